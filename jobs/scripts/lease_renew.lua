-- Extend the lease, only for its holder. Returns 1, or 0 when another token holds it (or none).
--
-- KEYS[1] lease: the lease (holds the holder's token)
-- ARGV[1] token: the holder's fencing token
-- ARGV[2] ttl_ms: the new time to live

if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
