"""Build the clients a process needs from the settings: one place, created in lifespan hooks."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from saq import Queue

from api.collections import load_collections
from api.jobs import JobStore
from api.queue import MINT_QUEUE, PIPELINE_QUEUE, make_queue
from api.settings import Settings
from chain.pinning.local import LocalStore
from personalization.registry import ContractRegistry
from personalization.style import StyleDNA


def load_registry(settings: Settings) -> ContractRegistry:
    registry = ContractRegistry.builtin()
    extra = list(settings.registry_files)
    local = settings.data_dir / "known_contracts.json"
    if local.exists():
        extra.append(local)
    for path in extra:
        registry = registry.merged(ContractRegistry.load(path))
    return registry


@dataclass
class Core:
    """Clients shared by the API, the worker and the minter."""

    settings: Settings
    redis: Redis
    jobs: JobStore
    pipeline_queue: Queue
    mint_queue: Queue
    collections: dict[str, StyleDNA]
    store: LocalStore

    @classmethod
    def create(cls, settings: Settings) -> Core:
        if settings.redis_url is None:
            raise ValueError("PERSONAMINT_REDIS_URL is not set")
        redis = Redis.from_url(settings.redis_url)
        return cls(
            settings=settings,
            redis=redis,
            jobs=JobStore(redis),
            pipeline_queue=make_queue(redis, PIPELINE_QUEUE, sweep_s=settings.sweep_s),
            mint_queue=make_queue(redis, MINT_QUEUE, sweep_s=settings.sweep_s),
            collections=load_collections(settings.collections_dir),
            store=LocalStore(settings.ipfs_dir),
        )

    async def close(self) -> None:
        await self.redis.aclose()
