-- What a job styled now would reserve under its collection's rarity caps (a preview's view): the
-- choice style_caps_reserve.lua would make, counting nothing. Returns JSON {field: value}, or
-- JSON {"refused": field} when a field's ranking has no value under its cap.
--
-- KEYS[1] counts: the collection's live tokens, in all (`tokens`) and per `<field>=<value>` (a hash)
-- ARGV[1] caps: the collection's caps (JSON {field: {value: {max?, share_ppm?, min_total?}}})
-- ARGV[2] rankings: per choice field, the values to try, best first (JSON {field: [value, ...]})
-- include: style_caps_choose

local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0') + 1
local got, refused = choose_capped(KEYS[1], cjson.decode(ARGV[1]), cjson.decode(ARGV[2]), tokens)
if not got then return cjson.encode({refused = refused}) end
return cjson.encode(got)
