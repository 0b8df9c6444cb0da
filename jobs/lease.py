"""A fenced Redis lease: exactly one minter per (chain, signer) holds it at a time."""

from __future__ import annotations

import asyncio
from typing import Protocol

from redis.asyncio import Redis

from chain.journal import FenceLost
from jobs import keys, lua


class LeaseLost(FenceLost):
    """Another holder has the lease now; stop sending at once."""


class Replicated(Protocol):
    """Waits until the writes made so far are on the replicas (config/redis_urls.Replication)."""

    async def confirm(self) -> None: ...


class FencedLease:
    """Holder gets a monotonically increasing fencing token; a renewal with a stale token fails.

    With `replication`, an acquisition and each renewal count only once the replicas hold them, so
    a Redis failover cannot hand the lease (or a fence already given out) to a second holder.
    """

    def __init__(self, redis: Redis, name: str, ttl_s: float, *, replication: Replicated | None = None) -> None:
        self.redis = redis
        self.replication = replication
        self.key = keys.lease_key(name)
        self.fence_key = keys.lease_fence_key(name)
        self.ttl_ms = int(ttl_s * 1000)
        self.token: int | None = None
        self._acquire = lua.register(redis, "lease_acquire")
        self._renew = lua.register(redis, "lease_renew")
        self._release = lua.register(redis, "lease_release")
        self._fenced_hset = lua.register(redis, "lease_fenced_hset")
        self._fenced_hdel = lua.register(redis, "lease_fenced_hdel")

    async def try_acquire(self) -> bool:
        token = await self._acquire(keys=[self.key, self.fence_key], args=[self.ttl_ms])
        if token is None:
            return False
        if self.replication is not None:
            await self.replication.confirm()  # raises: not held as far as a failover is concerned
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
        renewed = bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if renewed and self.replication is not None:
            await self.replication.confirm()
        return renewed

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
