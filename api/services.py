"""Build the clients a process needs from the settings: one place, created in lifespan hooks."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from saq import Queue

from api.collections import load_collection_configs
from api.jobs import JobStore
from api.pipeline import Personalizer
from api.queue import MINT_QUEUE, PIPELINE_QUEUE, make_queue
from api.settings import Settings
from chain.pinning.local import LocalStore
from personalization.cache import CachedHistory, HistoryCache
from personalization.history import HistorySource, RpcHistorySource
from personalization.indexer import AlchemyHistorySource
from personalization.orchestrator import Orchestrator, build_orchestrator
from personalization.registry import ContractRegistry
from personalization.rpc import JsonRpcClient
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


def build_history(settings: Settings, rpc: JsonRpcClient, redis: Redis) -> CachedHistory:
    """The configured history source behind the Redis summary cache."""
    if settings.history_indexer == "alchemy":
        source: HistorySource = AlchemyHistorySource(rpc, max_depth=settings.history_max_depth)
    else:
        source = RpcHistorySource(
            rpc,
            max_depth=settings.history_max_depth,
            window=settings.history_window,
            concurrency=settings.history_concurrency,
        )
    return CachedHistory(
        source, HistoryCache(redis, ttl_s=settings.history_cache_ttl_s, head_ttl_s=settings.history_head_ttl_s)
    )


def build_orchestrator_from(settings: Settings, redis: Redis) -> Orchestrator:
    """The LLM orchestrator when PERSONAMINT_LLM_BASE_URL is set (answers kept in Redis), else the rule-based one."""
    return build_orchestrator(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        settings.llm_timeout_s,
        retries=settings.llm_retries,
        max_tokens=settings.llm_max_tokens,
        answers=redis,
    )


def build_personalizer(settings: Settings, rpc: JsonRpcClient, redis: Redis) -> Personalizer:
    """Profile + style exactly as the worker runs them: the API's previews and profiles use the same one."""
    return Personalizer(
        history=build_history(settings, rpc, redis),
        registry=load_registry(settings),
        orchestrator=build_orchestrator_from(settings, redis),
    )


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
