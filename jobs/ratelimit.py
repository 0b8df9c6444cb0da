"""Atomic rate limits in Redis: GCRA (a leaky bucket kept as one timestamp) in Lua, shared by every process.

GCRA stores per bucket only its "theoretical arrival time" (TAT). A request is allowed when
TAT - now <= (burst - 1) * interval; then TAT moves on by one interval. The Retry-After for a
refused request falls out exactly, and a bucket costs one key with a self-cleaning expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

# Lua shared by every script that limits. `now_ms` comes from the Redis clock (TIME), so API
# processes on machines with skewed clocks still agree. Each limit is checked before any is
# charged: a request refused by one bucket costs nothing in the others.
GCRA_LUA = """
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
"""

_CHECK = (
    GCRA_LUA
    + """
local limits = {}
for i = 1, #KEYS do
  limits[i] = {KEYS[i], ARGV[2 * i - 1], ARGV[2 * i]}
end
return gcra(limits, now_ms())
"""
)


@dataclass(frozen=True)
class Limit:
    """`rate` requests per `period_s`, with bursts of up to `burst`."""

    rate: int
    period_s: float = 60.0
    burst: int = 1

    @property
    def interval_ms(self) -> float:
        return self.period_s * 1000.0 / self.rate

    @classmethod
    def per_minute(cls, rate: int, burst: int) -> Limit:
        return cls(rate=rate, period_s=60.0, burst=max(1, burst))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float
    remaining: int

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up: a client that waits that long will pass."""
        return str(max(1, math.ceil(self.retry_after_s)))


def decision_from(raw: list[int | bytes]) -> Decision:
    allowed, retry_ms, remaining = (int(v) for v in raw[:3])
    return Decision(allowed=bool(allowed), retry_after_s=retry_ms / 1000.0, remaining=max(0, remaining))


class RateLimiter:
    """Check several buckets at once, atomically: all pass and are charged, or none is."""

    def __init__(self, redis: Redis) -> None:
        self._check = redis.register_script(_CHECK)

    async def hit(self, *buckets: tuple[str, Limit]) -> Decision:
        keys = [f"pm:rl:{name}" for name, _ in buckets]
        args: list[float | int] = []
        for _, limit in buckets:
            args += [limit.interval_ms, limit.burst]
        return decision_from(await self._check(keys=keys, args=args))
