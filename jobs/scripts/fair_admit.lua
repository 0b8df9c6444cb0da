-- Admit a tenant's pipeline job into the shared queue, or keep it waiting in the tenant's own line:
-- at most `per_tenant` of a tenant's jobs are in the shared queue at once, oldest first, so one
-- tenant's backlog never stands in front of another tenant's next job. Admitting a job already
-- admitted or waiting changes nothing. Returns the ids to enqueue now: the job itself when it is
-- admitted (again), and any older ones of the tenant's that a free place took in.
--
-- KEYS[1] admitted: the tenant's jobs in the shared queue (a set)
-- KEYS[2] waiting: the tenant's jobs not yet admitted, scored by creation time
-- KEYS[3] tenants: the tenants with jobs admitted or waiting (what the sweep walks)
-- ARGV[1] job_id: the job
-- ARGV[2] created_at: its creation time (unix seconds): its place in the tenant's line
-- ARGV[3] per_tenant: how many of the tenant's jobs may be admitted at once
-- ARGV[4] tenant: the tenant (its entry in the tenants set)
-- include: fair_fill

redis.call('SADD', KEYS[3], ARGV[4])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  local admitted = fair_fill(KEYS[1], KEYS[2], tonumber(ARGV[3]))
  table.insert(admitted, 1, ARGV[1])
  return admitted
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
return fair_fill(KEYS[1], KEYS[2], tonumber(ARGV[3]))
