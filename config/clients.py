"""Build the clients a process needs from the settings: one place, created in lifespan hooks."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from saq import Queue

from config.collections import load_collection_configs
from config.settings import Settings
from ipfs.pinning.local import LocalStore
from jobs.queues import MINT_QUEUE, PIPELINE_QUEUE, make_queue
from jobs.store import JobStore
from personalization.style import StyleDNA


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
    # Per-wallet mint cap by collection id (0: unlimited): the collection file's
    # `deployment.per_wallet_cap`, overridden by PERSONAMINT_WALLET_CAPS.
    wallet_caps: dict[str, int]

    @classmethod
    def create(cls, settings: Settings) -> Core:
        if settings.redis_url is None:
            raise ValueError("PERSONAMINT_REDIS_URL is not set")
        redis = Redis.from_url(settings.redis_url)
        configs = load_collection_configs(settings.collections_dir)
        return cls(
            settings=settings,
            redis=redis,
            jobs=JobStore(redis),
            pipeline_queue=make_queue(redis, PIPELINE_QUEUE, sweep_s=settings.sweep_s),
            mint_queue=make_queue(redis, MINT_QUEUE, sweep_s=settings.sweep_s),
            collections={collection_id: config.style_dna for collection_id, config in configs.items()},
            store=LocalStore(settings.ipfs_dir),
            wallet_caps={
                **{collection_id: config.deployment.per_wallet_cap for collection_id, config in configs.items()},
                **settings.wallet_caps,
            },
        )

    async def close(self) -> None:
        await self.redis.aclose()
