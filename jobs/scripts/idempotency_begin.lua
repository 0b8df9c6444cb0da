-- Start an idempotent request (Stripe-style Idempotency-Key for POSTs that are not mints).
-- Returns {'new'} (the key is now pending) | {'conflict'} (another body) | {'in_progress'}
--       | {'done', the stored record}.
--
-- KEYS[1] record: the idempotency record
-- ARGV[1] body_hash: the request body's fingerprint
-- ARGV[2] pending_ttl_s: how long a pending record holds the key

local existing = redis.call('GET', KEYS[1])
if not existing then
  redis.call('SET', KEYS[1], cjson.encode({state = 'pending', body = ARGV[1]}), 'EX', ARGV[2])
  return {'new'}
end
local record = cjson.decode(existing)
if record['body'] ~= ARGV[1] then return {'conflict'} end
if record['state'] == 'pending' then return {'in_progress'} end
return {'done', existing}
