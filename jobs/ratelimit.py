"""Atomic rate limits in Redis: GCRA (a leaky bucket kept as one timestamp) in Lua, shared by every process.

The algorithm is jobs/scripts/gcra.lua, included by every script that limits (this check, the
accept, the authentication).

GCRA stores per bucket only its "theoretical arrival time" (TAT). A request is allowed when
TAT - now <= (burst - 1) * interval; then TAT moves on by one interval. The Retry-After for a
refused request falls out exactly, and a bucket costs one key with a self-cleaning expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from jobs import keys, lua


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
        self._check = lua.register(redis, "ratelimit_check")

    async def hit(self, *buckets: tuple[str, Limit]) -> Decision:
        bucket_keys = [keys.rate_limit_key(name) for name, _ in buckets]
        args: list[float | int] = []
        for _, limit in buckets:
            args += [limit.interval_ms, limit.burst]
        return decision_from(await self._check(keys=bucket_keys, args=args))
