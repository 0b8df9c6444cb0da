-- Refresh the leases of the streams an API process still holds open (only those still there). Returns how many.
--
-- KEYS[1..n] leases: each stream's credential set (lease id → expiry ms)
-- ARGV[1..2n] lease, ttl_ms: each stream's lease id and its new time to live

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local renewed = 0
for i, key in ipairs(KEYS) do
  local ttl = tonumber(ARGV[2 * i])
  renewed = renewed + redis.call('ZADD', key, 'XX', 'CH', now + ttl, ARGV[2 * i - 1])
  redis.call('PEXPIRE', key, ttl)
end
return renewed
