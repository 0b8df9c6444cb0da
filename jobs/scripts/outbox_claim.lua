-- Take up to N due deliveries and push each one's due time past the lease, so another delivery
-- loop does not take it meanwhile; a loop that dies mid-delivery leaves it due again later.
-- Returns the claimed delivery ids.
--
-- KEYS[1] deliveries_due: outbound deliveries by due time
-- ARGV[1] now: the current time (unix seconds)
-- ARGV[2] lease_until: when a claimed delivery falls due again
-- ARGV[3] batch: the most deliveries claimed

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
