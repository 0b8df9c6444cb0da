-- Open one SSE stream for a credential, unless it already holds `limit` live ones. Returns 1, or 0 when full.
-- Each stream is a lease in the credential's sorted set, scored by its expiry on the Redis clock: the
-- API process refreshes its streams' leases while they live, so a crashed process's streams lapse.
--
-- KEYS[1] leases: the credential's open streams (lease id → expiry ms)
-- ARGV[1] lease: the new stream's lease id
-- ARGV[2] limit: how many streams the credential may hold open
-- ARGV[3] ttl_ms: how long a lease lasts without a refresh

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
