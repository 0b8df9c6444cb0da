-- A SIWE nonce's try budget. The nonce key holds how many verifications with it failed (0 when
-- handed out) and keeps its TTL throughout; at ARGV[2] failures it is spent, and stays spent
-- (answering -2) until it expires. `charge` counts one failed (or about-to-be-tried) verification;
-- `spend` uses the nonce up for a sign-in that passed every check.
-- Returns -1 for an unknown or expired nonce, -2 for a spent one, else (charge) the failures so
-- far or (spend) 1.
--
-- KEYS[1] nonce: the nonce's key
-- ARGV[1] action: charge | spend
-- ARGV[2] max_failures: failed verifications one nonce allows
-- ARGV[3] precharged: spend only: 1 when this sign-in's own try was charged already, else 0

local value = redis.call('GET', KEYS[1])
if not value then return -1 end
local failures = tonumber(value) or 0
local max_failures = tonumber(ARGV[2])
if ARGV[1] == 'charge' then
  if failures >= max_failures then return -2 end
  return redis.call('INCR', KEYS[1])
end
if failures - tonumber(ARGV[3] or '0') >= max_failures then return -2 end
redis.call('DEL', KEYS[1])
return 1
