"""Build the personalizer (history, registry, orchestrator) from the settings, as the worker runs it."""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from chain.rpc import JsonRpc
from config.chains import DEFAULT_CHAIN, ChainRoutes
from config.settings import Settings
from jobs.keys import HISTORY_CACHE_PREFIX
from personalization.cache import CachedHistory, HistoryCache
from personalization.history import HistorySource, RpcHistorySource, history_rpc
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
            traces=settings.history_traces,
        )
    return CachedHistory(
        source,
        HistoryCache(
            redis,
            ttl_s=settings.history_cache_ttl_s,
            head_ttl_s=settings.history_head_ttl_s,
            ledger_ttl_s=settings.history_ledger_ttl_s,
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


def history_rpcs(routes: ChainRoutes, *, retries: int = 4, default_url: str | None = None) -> dict[str, JsonRpc]:
    """One history client per chain (route key → client) on its primary RPC URL.

    `default_url` stands in for a default chain without PERSONAMINT_RPC_URL (the API's
    profiles answer 503 there rather than refusing to start).
    """
    clients = {}
    for key, route in routes.chains.items():
        url = route.rpc_urls[0] if route.rpc_urls else default_url
        if url is None:
            raise ValueError(f"{route.label} has no RPC URL (PERSONAMINT_RPC_URL is not set)")
        clients[key] = history_rpc(url, retries=retries)
    return clients


def build_personalizer(settings: Settings, rpcs: Mapping[str, JsonRpc], redis: Redis) -> Personalizer:
    """Profile + style exactly as the worker runs them: the API's previews and profiles use the same one.

    `rpcs`: each chain's history client by route key (`history_rpcs`); `default` is required.
    """
    return Personalizer(
        history=build_history(settings, rpcs[DEFAULT_CHAIN], redis),
        registry=load_registry(settings),
        orchestrator=build_orchestrator_from(settings, redis),
        chain_histories={key: build_history(settings, rpc, redis) for key, rpc in rpcs.items() if key != DEFAULT_CHAIN},
    )
