"""Orchestrators: WalletProfile + StyleDNA → StyleParams, always inside the bounds."""

from __future__ import annotations

from typing import Any

from personalization.orchestrator.base import Orchestration, Orchestrator

__all__ = ["Orchestration", "Orchestrator", "build_orchestrator"]


def build_orchestrator(
    base_url: str | None,
    model: str,
    api_key: str | None = None,
    timeout_s: float = 20.0,
    *,
    retries: int = 2,
    max_tokens: int = 256,
    seed: int = 0,
    answers: Any = None,
    http_client: Any = None,
) -> Orchestrator:
    """The rule-based orchestrator when no LLM URL is set; otherwise the LLM, falling back to it.

    `answers` (a redis.asyncio.Redis) lets the LLM orchestrator give the same answer for the
    same prompt even where the provider is not deterministic at temperature 0.
    """
    from personalization.orchestrator.rule_based import RuleBasedOrchestrator

    if base_url is None:
        return RuleBasedOrchestrator()
    from personalization.orchestrator.llm import LLMOrchestrator

    return LLMOrchestrator(
        base_url=base_url,
        model=model,
        api_key=api_key,
        timeout_s=timeout_s,
        retries=retries,
        max_tokens=max_tokens,
        seed=seed,
        answers=answers,
        http_client=http_client,
    )
