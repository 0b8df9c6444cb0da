-- HSET only while holding the lease. The write and the fence check are one step: a holder whose
-- lease ran out (paused, partitioned) cannot record anything after a successor took over, so the
-- successor's view is complete. Returns 1, or 0 when the write was refused.
--
-- KEYS[1] lease: the lease (holds the holder's token)
-- KEYS[2] hash: the hash written
-- ARGV[1] token: the holder's fencing token
-- ARGV[2] field: the field set
-- ARGV[3] value: its value

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
