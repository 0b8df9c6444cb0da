-- A job leaves its tenant's share of the pipeline queue (it reached the minter, failed, or is
-- gone): its place goes to the tenant's oldest waiting jobs. Returns the ids newly admitted, to
-- enqueue; a tenant with nothing admitted or waiting leaves the tenants set.
--
-- KEYS[1] admitted: the tenant's jobs in the shared queue (a set)
-- KEYS[2] waiting: the tenant's jobs not yet admitted, scored by creation time
-- KEYS[3] tenants: the tenants with jobs admitted or waiting (what the sweep walks)
-- ARGV[1] job_id: the job that leaves
-- ARGV[2] per_tenant: how many of the tenant's jobs may be admitted at once
-- ARGV[3] tenant: the tenant (its entry in the tenants set)
-- include: fair_fill

redis.call('SREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local admitted = fair_fill(KEYS[1], KEYS[2], tonumber(ARGV[2]))
if redis.call('SCARD', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[3])
end
return admitted
