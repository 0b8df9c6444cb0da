-- Look a credential up and charge its rate-limit bucket in one round trip; a read that knows
-- its job record fetches it in the same trip once the caller is let in.
-- Returns {0} (unknown credential) | {1, record, allowed, retry_after_ms, remaining, burst[, job]}.
--
-- KEYS[1] credential: the API key or session record
-- KEYS[2] bucket: the credential's rate-limit bucket
-- KEYS[3] job?: the job record hash to prefetch (absent when none)
-- ARGV[1] interval_ms: the default limit's emission interval (the record may override it)
-- ARGV[2] burst: the default limit's burst (the record may override it)
-- ARGV[3] prefetch: 'head' to fetch only the job's tenant and status, '' for the whole record
-- include: gcra

local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local record = cjson.decode(raw)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
if type(record['rate_per_min']) == 'number' and record['rate_per_min'] > 0 then
  interval = 60000 / record['rate_per_min']
end
if type(record['burst']) == 'number' and record['burst'] > 0 then burst = record['burst'] end
local decision = gcra({{KEYS[2], interval, burst}}, now_ms())
if KEYS[3] and decision[1] == 1 then
  -- A read that knows its record: fetched in the same round trip (tenant checked by the caller),
  -- whole, or only its owner and status when the caller holds an ended record's answer already.
  local job
  if ARGV[3] == 'head' then
    job = redis.call('HMGET', KEYS[3], 'tenant', 'status')
  else
    job = redis.call('HGETALL', KEYS[3])
  end
  return {1, raw, decision[1], decision[2], decision[3], tostring(burst), job}
end
return {1, raw, decision[1], decision[2], decision[3], tostring(burst)}
