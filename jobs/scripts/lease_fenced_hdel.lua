-- HDEL only while holding the lease (see lease_fenced_hset.lua). Returns 1, or 0 when refused.
--
-- KEYS[1] lease: the lease (holds the holder's token)
-- KEYS[2] hash: the hash written
-- ARGV[1] token: the holder's fencing token
-- ARGV[2] field: the field deleted

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
