-- Accept a mint atomically: an idempotency key maps to one job forever (24 h); a replay is
-- answered before any limit is charged; then the recipient's rate limit and the per-wallet cap;
-- the edition counter moves only when a new job is really created.
-- Returns {'created', job id, edition} | {'existing', job id} | {'conflict', job id}
--       | {'rate_limited', '', retry after ms} | {'cap_reached', '', cap} | {'budget_spent', '', budget}.
--
-- KEYS[1] idempotency: the idempotency record ('' when the request has no key)
-- KEYS[2] edition: the recipient's edition counter in the collection
-- KEYS[3] job: the new job record hash
-- KEYS[4] events: the job's event stream
-- KEYS[5] all_jobs: every job by creation time
-- KEYS[6] recipient_limit: the tenant's rate-limit bucket for the recipient
-- KEYS[7] minted: the tenant's live mints to the recipient in the collection (what the cap counts)
-- KEYS[8] open_jobs: jobs not yet ended, by creation time
-- KEYS[9] legacy_idempotency: the record's pre-canonical spelling, read only ('' when no key)
-- KEYS[10] daily_budget: the caller's mints accepted this UTC day ('' when it has no budget)
-- ARGV[1] job_id: the new job's id
-- ARGV[2] body_hash: sha256 of the canonical request body
-- ARGV[3] fields: the record's fields as a JSON list [name, value, ...]
-- ARGV[4] now: the creation time (unix seconds)
-- ARGV[5] events_maxlen: the event stream's approximate cap
-- ARGV[6] idempotency_ttl_s: how long the idempotency record lives
-- ARGV[7] recipient_interval_ms: the recipient limit's emission interval
-- ARGV[8] recipient_burst: the recipient limit's burst (0: no limit)
-- ARGV[9] cap: the per-wallet cap (0: none)
-- ARGV[10] budget: mints the daily budget allows
-- ARGV[11] budget_ttl_s: how long the day's counter is kept (past the day's end)
-- include: gcra

if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if not existing and KEYS[9] ~= '' then existing = redis.call('GET', KEYS[9]) end
  if existing then
    local sep = string.find(existing, '|', 1, true)
    local job_id = string.sub(existing, 1, sep - 1)
    if string.sub(existing, sep + 1) == ARGV[2] then return {'existing', job_id} end
    return {'conflict', job_id}
  end
end
if tonumber(ARGV[8]) > 0 then
  local decision = gcra({{KEYS[6], ARGV[7], ARGV[8]}}, now_ms())
  if decision[1] == 0 then return {'rate_limited', '', tostring(decision[2])} end
end
local cap = tonumber(ARGV[9])
if cap > 0 and tonumber(redis.call('GET', KEYS[7]) or '0') >= cap then
  return {'cap_reached', '', tostring(cap)}
end
-- The daily mint budget (what bounds the gas a tenant spends): the last check, so only a job
-- really created spends from it.
if KEYS[10] ~= '' then
  if tonumber(redis.call('GET', KEYS[10]) or '0') >= tonumber(ARGV[10]) then
    return {'budget_spent', '', ARGV[10]}
  end
  redis.call('INCR', KEYS[10])
  redis.call('EXPIRE', KEYS[10], ARGV[11])
end
redis.call('INCR', KEYS[7])
local edition = redis.call('INCR', KEYS[2]) - 1
-- The job keeps the counter it took a slot in: release_cap.lua gives back exactly that one.
redis.call('HSET', KEYS[3], 'edition', edition, 'cap_key', KEYS[7], unpack(cjson.decode(ARGV[3])))
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'status', 'queued', 'at', ARGV[4])
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[6]) end
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[4], ARGV[1])
return {'created', ARGV[1], tostring(edition)}
