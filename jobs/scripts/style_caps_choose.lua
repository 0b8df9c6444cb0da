-- Choose, per choice field, the first value of its ranking that is under its rarity cap
-- (personalization/caps.py states the rule, jobs/style_caps.py calls the scripts that include this).
-- Functions only, no KEYS or ARGV of its own: shared by style_caps_reserve and style_caps_peek.

-- How many live tokens may have a value; tokens: the collection's live tokens counting the new one.
-- min(max, floor(share_ppm * max(tokens, min_total) / 1e6)), in whole numbers.
local function cap_limit(cap, tokens)
  local limit = cap.max
  if cap.share_ppm then
    local scaled = cap.share_ppm * math.max(tokens, cap.min_total)
    local by_share = (scaled - scaled % 1000000) / 1000000
    if not limit or by_share < limit then limit = by_share end
  end
  return limit
end

-- The choice (field -> value) reading the live counts in `counts_key`, or nil and the field whose
-- ranking has no value under its cap.
local function choose_capped(counts_key, caps, rankings, tokens)
  local chosen = {}
  for name, ranking in pairs(rankings) do
    local field_caps = caps[name] or {}
    for _, value in ipairs(ranking) do
      local cap = field_caps[value]
      if not cap or tonumber(redis.call('HGET', counts_key, name .. '=' .. value) or '0') < cap_limit(cap, tokens) then
        chosen[name] = value
        break
      end
    end
    if not chosen[name] then return nil, name end
  end
  return chosen
end
