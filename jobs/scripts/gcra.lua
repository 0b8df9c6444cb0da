-- GCRA rate limiting (a leaky bucket kept as one timestamp), shared by every script that limits.
-- Functions only, no KEYS or ARGV of its own: scripts that limit include it (`-- include: gcra`).
--
-- `now_ms` comes from the Redis clock (TIME), so API processes on machines with skewed clocks
-- still agree. Each limit is checked before any is charged: a request refused by one bucket
-- costs nothing in the others.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- limits: list of {key, interval_ms, burst}; returns {allowed, retry_after_ms, remaining_of_first}
local function gcra(limits, now)
  local new_tats = {}
  local remaining = -1
  for i, limit in ipairs(limits) do
    local key, interval, burst = limit[1], tonumber(limit[2]), tonumber(limit[3])
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local allow_at = tat + interval - interval * burst
    if now < allow_at then
      return {0, allow_at - now, 0}
    end
    new_tats[i] = tat + interval
    if i == 1 then remaining = math.floor((now - (new_tats[i] - interval * burst)) / interval) end
  end
  for i, limit in ipairs(limits) do
    redis.call('SET', limit[1], new_tats[i], 'PX', math.max(1, math.ceil(new_tats[i] - now)))
  end
  return {1, 0, remaining}
end
