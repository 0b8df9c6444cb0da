"""Build the personalizer (history, registry, orchestrator) from the settings, as the worker runs it."""

from __future__ import annotations

from redis.asyncio import Redis

from chain.rpc import JsonRpc
from config.settings import Settings
from jobs.keys import HISTORY_CACHE_PREFIX
from personalization.cache import CachedHistory, HistoryCache
from personalization.history import HistorySource, RpcHistorySource
from personalization.indexer import AlchemyHistorySource
from personalization.orchestrator import Orchestrator, build_orchestrator
from personalization.registry import ContractRegistry
from pipeline.runner import Personalizer


def load_registry(settings: Settings) -> ContractRegistry:
    registry = ContractRegistry.builtin()
    extra = list(settings.registry_files)
    local = settings.data_dir / "known_contracts.json"
    if local.exists():
        extra.append(local)
    for path in extra:
        registry = registry.merged(ContractRegistry.load(path))
    return registry


def build_history(settings: Settings, rpc: JsonRpc, redis: Redis) -> CachedHistory:
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
        source,
        HistoryCache(
            redis,
            ttl_s=settings.history_cache_ttl_s,
            head_ttl_s=settings.history_head_ttl_s,
            prefix=HISTORY_CACHE_PREFIX,
        ),
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


def build_personalizer(settings: Settings, rpc: JsonRpc, redis: Redis) -> Personalizer:
    """Profile + style exactly as the worker runs them: the API's previews and profiles use the same one."""
    return Personalizer(
        history=build_history(settings, rpc, redis),
        registry=load_registry(settings),
        orchestrator=build_orchestrator_from(settings, redis),
    )
