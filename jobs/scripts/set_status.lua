-- Every status change is one atomic step: the job hash, the event (with the stage timings so
-- far, for live progress) and, on an end state, the outbound webhook in the outbox
-- (transactional outbox: a confirmed job can never lack its delivery). A delivery is keyed by
-- (job, status) and its event id derives from that key, so a repeated status write schedules
-- nothing new; besides the ends, a voucher ready for its collector is delivered too. An ended job is left unchanged (no event): ends are final. An end also starts the
-- retention clock: the record and its events expire `retention_s` later (the chain is the record
-- of a token after that); an open job never expires.
-- Returns the event's stream id, or 0 when the job had ended already.
--
-- KEYS[1] job: the job record hash
-- KEYS[2] events: the job's event stream
-- KEYS[3] open_jobs: jobs not yet ended, by creation time
-- KEYS[4] deliveries_due: outbound deliveries by due time
-- ARGV[1] job_id: the job's id
-- ARGV[2] status: the new status
-- ARGV[3] detail: a human-readable detail ('' for none)
-- ARGV[4] data: the event's JSON data ('' for none)
-- ARGV[5] now: the event time (unix seconds)
-- ARGV[6] events_maxlen: the event stream's approximate cap
-- ARGV[7] ended: '1' when the status is an end state
-- ARGV[8] endpoint_template: key template of a tenant's webhook endpoint ({} = tenant)
-- ARGV[9] delivery_template: key template of one delivery ({} = delivery id)
-- ARGV[10] tenant_deliveries_template: key template of a tenant's deliveries ({} = tenant)
-- ARGV[11] retention_s: how long an ended job's record and events are kept
-- ARGV[12] notify: '1' when the change is an outbound webhook (an end, or a voucher to pass on)
-- include: unless_ended
-- include: key_template

redis.call('HSET', KEYS[1], 'status', ARGV[2], 'detail', ARGV[3])
local timings = {}
local has_timings = false
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 5) == 'time:' then
    timings[string.sub(flat[i], 6)] = tonumber(flat[i + 1])
    has_timings = true
  end
end
local event = {'status', ARGV[2], 'at', ARGV[5]}
if ARGV[3] ~= '' then table.insert(event, 'detail'); table.insert(event, ARGV[3]) end
if ARGV[4] ~= '' then table.insert(event, 'data'); table.insert(event, ARGV[4]) end
if has_timings then table.insert(event, 'timings'); table.insert(event, cjson.encode(timings)) end
local event_id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(event))
if ARGV[7] == '1' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[11])
  redis.call('EXPIRE', KEYS[2], ARGV[11])
end
if ARGV[12] == '1' then
  local tenant = redis.call('HGET', KEYS[1], 'tenant')
  if tenant and redis.call('EXISTS', key_from(ARGV[8], tenant)) == 1 then
    local delivery_id = ARGV[1] .. '.' .. ARGV[2]
    local delivery_key = key_from(ARGV[9], delivery_id)
    if redis.call('EXISTS', delivery_key) == 0 then
      redis.call('HSET', delivery_key,
        'id', delivery_id, 'tenant', tenant, 'job_id', ARGV[1], 'type', 'mint.' .. ARGV[2],
        'event_id', 'evt_' .. string.sub(redis.sha1hex(delivery_id), 1, 24),
        'state', 'pending', 'attempts', '0', 'created_at', ARGV[5], 'next_at', ARGV[5])
      redis.call('ZADD', KEYS[4], ARGV[5], delivery_id)
      redis.call('ZADD', key_from(ARGV[10], tenant), ARGV[5], delivery_id)
    end
  end
end
return event_id
