"""A fenced Redis lease: exactly one minter per (chain, signer) holds it at a time."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from chain.journal import FenceLost

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return nil end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# The write and the fence check are one step: a holder whose lease ran out (paused, partitioned)
# cannot record anything after a successor took over, so the successor's view is complete.
_FENCED_HSET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
_FENCED_HDEL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""


class LeaseLost(FenceLost):
    """Another holder has the lease now; stop sending at once."""


class FencedLease:
    """Holder gets a monotonically increasing fencing token; a renewal with a stale token fails."""

    def __init__(self, redis: Redis, name: str, ttl_s: float) -> None:
        self.redis = redis
        self.key = f"pm:lease:{name}"
        self.fence_key = f"pm:lease:{name}:fence"
        self.ttl_ms = int(ttl_s * 1000)
        self.token: int | None = None
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._fenced_hset = redis.register_script(_FENCED_HSET)
        self._fenced_hdel = redis.register_script(_FENCED_HDEL)

    async def try_acquire(self) -> bool:
        token = await self._acquire(keys=[self.key, self.fence_key], args=[self.ttl_ms])
        if token is None:
            return False
        self.token = int(token)
        return True

    async def acquire(self, poll_s: float = 0.5) -> int:
        """Wait until the lease is free, then hold it."""
        while not await self.try_acquire():
            await asyncio.sleep(poll_s)
        assert self.token is not None
        return self.token

    async def renew(self) -> bool:
        if self.token is None:
            return False
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def ensure_held(self) -> None:
        """Call before any irreversible step (a send)."""
        held = await self.redis.get(self.key)
        if self.token is None or held is None or int(held) != self.token:
            raise LeaseLost(f"{self.key} is no longer held by fence {self.token}")

    async def hset(self, key: str, field: str, value: str) -> None:
        """HSET only while holding the lease; raises LeaseLost otherwise."""
        if self.token is None or not await self._fenced_hset(keys=[self.key, key], args=[self.token, field, value]):
            raise LeaseLost(f"{self.key} is no longer held by fence {self.token}; write refused")

    async def hdel(self, key: str, field: str) -> None:
        """HDEL only while holding the lease; raises LeaseLost otherwise."""
        if self.token is None or not await self._fenced_hdel(keys=[self.key, key], args=[self.token, field]):
            raise LeaseLost(f"{self.key} is no longer held by fence {self.token}; delete refused")

    async def release(self) -> None:
        if self.token is not None:
            await self._release(keys=[self.key], args=[self.token])
            self.token = None
