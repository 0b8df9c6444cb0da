"""Build the clients a process needs from the settings: one place, created in lifespan hooks."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from saq import Queue

from config.chains import DEFAULT_CHAIN, ChainRoute, ChainRoutes, chain_routes
from config.collections import VoucherPolicy, load_collection_configs
from config.redis_urls import Replication, redis_client
from config.settings import Settings
from ipfs.pinning import Pinner
from ipfs.pinning.local import LocalStore
from ipfs.pinning.redundant import aclose_pinner, build_pinner
from jobs.fairshare import FairShare, fair_lane
from jobs.pinned import PinnedRegistry, RecordingPinner
from jobs.queues import PIPELINE_QUEUE, PREVIEW_QUEUE, enqueue_pipeline, make_queue
from jobs.store import JobStore
from personalization.style import StyleDNA


def bounded_redis(settings: Settings, *, client_name: str | None = None) -> Redis:
    """A Redis client on a pool of at most `redis_max_connections` connections.

    Past that a command waits up to `redis_pool_timeout_s` for a free connection, then fails with
    redis' ConnectionError (the API answers 503): load queues briefly instead of opening
    connections without bound. `client_name` (CLIENT SETNAME) tells the process's connections apart.
    """
    if settings.redis_url is None:
        raise ValueError("PERSONAMINT_REDIS_URL is not set")
    return redis_client(  # closing the client closes its pool
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        client_name=client_name,
    )


@dataclass
class Core:
    """Clients shared by the API, the worker and the minter."""

    settings: Settings
    redis: Redis
    jobs: JobStore
    pipeline_queue: Queue
    mint_queue: Queue
    """The default chain's mint queue (`pm-mint`); `mint_queue_for` gives a collection's."""
    collections: dict[str, StyleDNA]
    store: LocalStore
    # Per-wallet mint cap by collection id (0: unlimited): the collection file's
    # `deployment.per_wallet_cap`, overridden by PERSONAMINT_WALLET_CAPS.
    wallet_caps: dict[str, int]
    # Mints a SIWE session may make per collection (0: none): the file's `[sessions]
    # mints_per_wallet`, else PERSONAMINT_SESSION_MINTS_PER_WALLET.
    session_mint_caps: dict[str, int]
    # Collector-paid mints by collection id: the file's `[vouchers]` (disabled when absent).
    vouchers: dict[str, VoucherPolicy]
    # Previews' own queue, so a preview flood never takes a mint's place in the pipeline queue.
    preview_queue: Queue
    # Each tenant's share of the pipeline queue: the way every pipeline job gets into it.
    fair: FairShare
    # The CIDs this deployment pinned, and the pinner every process pins and reads through: this
    # process's local store plus the configured remote pinners (which every machine reaches).
    pinned: PinnedRegistry
    pinner: Pinner
    # WAIT for replicas after a write that must survive a failover (an accepted mint, the lease).
    replication: Replication
    # Each collection's chain (RPC URLs, contract, confirmations, fee ceiling) and its mint queue.
    routes: ChainRoutes
    mint_queues: dict[str, Queue]

    def mint_queue_for(self, collection_id: str) -> Queue:
        """The mint queue of the collection's chain: only that chain's minter takes from it."""
        return self.mint_queues[self.routes.chain_for(collection_id).key]

    def chain_for(self, collection_id: str) -> ChainRoute:
        return self.routes.chain_for(collection_id)

    def fair_lane(self, tenant: str, collection_id: str) -> str:
        """The tenant's line in the pipeline's fair share for this collection's chain."""
        key = self.routes.chain_for(collection_id).key
        return fair_lane(tenant, None if key == DEFAULT_CHAIN else key)

    @classmethod
    def create(cls, settings: Settings, *, client_name: str | None = None) -> Core:
        if settings.redis_url is None:
            raise ValueError("PERSONAMINT_REDIS_URL is not set")
        redis = bounded_redis(settings, client_name=client_name)
        configs = load_collection_configs(settings.collections_dir)
        pipeline_queue = make_queue(redis, PIPELINE_QUEUE, sweep_s=settings.sweep_s)
        routes = chain_routes(settings, configs)
        mint_queues = {
            key: make_queue(redis, route.mint_queue, sweep_s=settings.sweep_s) for key, route in routes.chains.items()
        }
        store = LocalStore(settings.ipfs_dir)
        pinned = PinnedRegistry(redis)
        pinner = build_pinner(
            settings.pinner_configs(), local=store, policy=settings.pin_policy, wait=settings.pin_wait_policy()
        )
        return cls(
            settings=settings,
            redis=redis,
            jobs=JobStore(redis, retention_s=settings.job_retention_s),
            pipeline_queue=pipeline_queue,
            mint_queue=mint_queues[routes.default.key],
            collections={collection_id: config.style_dna for collection_id, config in configs.items()},
            store=store,
            wallet_caps={
                **{collection_id: config.deployment.per_wallet_cap for collection_id, config in configs.items()},
                **settings.wallet_caps,
            },
            session_mint_caps={
                collection_id: (
                    settings.session_mints_per_wallet
                    if config.sessions.mints_per_wallet is None
                    else config.sessions.mints_per_wallet
                )
                for collection_id, config in configs.items()
            },
            vouchers={collection_id: config.vouchers for collection_id, config in configs.items()},
            preview_queue=make_queue(redis, PREVIEW_QUEUE, sweep_s=settings.sweep_s),
            fair=FairShare(
                redis,
                per_tenant=settings.tenant_pipeline_in_flight,
                enqueue=lambda job_id: enqueue_pipeline(pipeline_queue, settings, job_id),
            ),
            pinned=pinned,
            pinner=RecordingPinner(pinner, pinned),
            replication=Replication(redis, settings.wait_replicas, settings.redis_wait_timeout_ms),
            routes=routes,
            mint_queues=mint_queues,
        )

    async def close(self) -> None:
        await aclose_pinner(self.pinner)
        await self.redis.aclose()
