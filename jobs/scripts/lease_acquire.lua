-- Take the lease when it is free, with the next fencing token. Returns the token, or nil when held.
--
-- KEYS[1] lease: the lease (holds the holder's token)
-- KEYS[2] fence: the fencing-token counter
-- ARGV[1] ttl_ms: how long the lease lasts without a renewal

if redis.call('EXISTS', KEYS[1]) == 1 then return nil end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
