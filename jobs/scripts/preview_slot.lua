-- Take one of a tenant's in-flight preview slots, dropping lapsed ones first (an API process that
-- died mid-preview leaves slots that lapse on their own). Returns 1 when taken, 0 when all are held.
--
-- KEYS[1] in_flight: the tenant's slots, a sorted set of slot ids scored by when each lapses (ms)
-- ARGV[1] slot: this slot's id
-- ARGV[2] limit: slots the tenant may hold at once
-- ARGV[3] lapse_ms: how long a slot is held at most
-- include: gcra

local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
