-- Reserve a job's style choices under its collection's rarity caps: per choice field the first
-- value of its ranking under its cap, counted in the collection's live tokens in the same step,
-- so concurrent jobs never pass a cap. Once per job: a retried job gets the reservation it holds
-- (whatever it ranks now), kept in its record as `style_caps`; release_cap.lua gives it back when
-- the job fails or expires. A job whose slots were given back already (it is ending) reserves
-- nothing. Returns the reservation (JSON {key, got, counted}), JSON {"refused": field} when a
-- field's ranking has no value under its cap (nothing is reserved then), or 0 when the job ended.
--
-- KEYS[1] job: the job record hash
-- KEYS[2] counts: the collection's live tokens, in all (`tokens`) and per `<field>=<value>` (a hash)
-- ARGV[1] caps: the collection's caps (JSON {field: {value: {max?, share_ppm?, min_total?}}})
-- ARGV[2] rankings: per choice field, the values to try, best first (JSON {field: [value, ...]})
-- include: unless_ended
-- include: style_caps_choose

local held = redis.call('HGET', KEYS[1], 'style_caps')
if held then return held end
if redis.call('HEXISTS', KEYS[1], 'cap_released') == 1 then return 0 end
local tokens = tonumber(redis.call('HGET', KEYS[2], 'tokens') or '0') + 1
local got, refused = choose_capped(KEYS[2], cjson.decode(ARGV[1]), cjson.decode(ARGV[2]), tokens)
if not got then return cjson.encode({refused = refused}) end
local counted = {}
for name, value in pairs(got) do
  local counter = name .. '=' .. value
  redis.call('HINCRBY', KEYS[2], counter, 1)
  table.insert(counted, counter)
end
redis.call('HINCRBY', KEYS[2], 'tokens', 1)
local reservation = cjson.encode({key = KEYS[2], got = got, counted = counted})
redis.call('HSET', KEYS[1], 'style_caps', reservation)
return reservation
