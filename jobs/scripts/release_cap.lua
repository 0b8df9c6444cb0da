-- A failed job records its error and gives its wallet's cap slot back, once, and with it the
-- rarity-cap reservation its style holds (style_caps_reserve.lua); an ended job is left as it
-- is. Returns 1, or 0 when the job had ended already.
--
-- KEYS[1] job: the job record hash
-- ARGV[1] error: the job's error (JSON)
-- include: unless_ended

redis.call('HSET', KEYS[1], 'error', ARGV[1])
if redis.call('HSETNX', KEYS[1], 'cap_released', '1') == 1 then
  -- The counter accept.lua counted the job under (jobs/keys.py minted_key), kept in the record.
  local counter = redis.call('HGET', KEYS[1], 'cap_key')
  if counter then
    if tonumber(redis.call('GET', counter) or '0') > 0 then redis.call('DECR', counter) end
  end
  -- The collection's live-token counts the style's reservation added to (named in the record).
  local held = redis.call('HGET', KEYS[1], 'style_caps')
  if held then
    local reservation = cjson.decode(held)
    for _, counted in ipairs(reservation.counted) do redis.call('HINCRBY', reservation.key, counted, -1) end
    redis.call('HINCRBY', reservation.key, 'tokens', -1)
  end
end
return 1
