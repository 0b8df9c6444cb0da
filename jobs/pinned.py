"""Which CIDs this deployment pinned: a Redis set every process reaches, written as each pin succeeds.

The gateway of any API process serves a CID from its own disk when it has it, else reads it
through the configured pinners, but only for a CID in this set: one the deployment never pinned
is answered 404 at once instead of after waiting on a remote.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ipfs.pinning import PinnedObject, Pinner
from jobs.keys import PINNED_CIDS_KEY

__all__ = ["PinnedRegistry", "RecordingPinner"]


class PinnedRegistry:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, cid: str) -> None:
        await self.redis.sadd(PINNED_CIDS_KEY, cid)  # type: ignore[misc]  # redis-py's async stubs

    async def contains(self, cid: str) -> bool:
        return bool(await self.redis.sismember(PINNED_CIDS_KEY, cid))  # type: ignore[misc]


class RecordingPinner:
    """A Pinner that notes every CID it pinned in the registry, once the pin succeeded."""

    def __init__(self, inner: Pinner, registry: PinnedRegistry) -> None:
        self.inner = inner
        self.registry = registry

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        cid = await self.inner.pin(data, content_type=content_type, name=name)
        await self.registry.add(cid)
        return cid

    async def get(self, cid: str) -> PinnedObject | None:
        return await self.inner.get(cid)

    async def aclose(self) -> None:
        from ipfs.pinning.redundant import aclose_pinner

        await aclose_pinner(self.inner)
