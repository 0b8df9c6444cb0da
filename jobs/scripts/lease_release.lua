-- Give the lease up, only for its holder. Returns 1, or 0 when another token holds it (or none).
--
-- KEYS[1] lease: the lease (holds the holder's token)
-- ARGV[1] token: the holder's fencing token

if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
