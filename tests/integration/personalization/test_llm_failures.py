"""The LLM orchestrator over real HTTP against a local OpenAI-protocol server: what it sends, and every failure.

The real ChatOpenAI and openai client run; only the server is ours (tests/openai_server.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalization.orchestrator import Orchestration
from personalization.orchestrator.llm import TOOL_NAME, LLMOrchestrator
from personalization.orchestrator.rule_based import rule_based_params
from personalization.style import CHOICE_FIELDS, NUMERIC_FIELDS, canonical_json, load_style_dna
from tests.support.archetypes import ARCHETYPES
from tests.support.openai_server import OpenAIServer

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
TRADER = ARCHETYPES["trader"]
BASELINE, PERSONA = rule_based_params(TRADER, DNA)
GOOD = {
    "palette": "gallery",
    "medium": "oil",
    "motif": "rings",
    "mood": "serene",
    "complexity": 4,
    "energy": 12,
    "symmetry": 90,
    "grain": 33,
    "hue_shift": -7,
}


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(arguments=json.dumps(GOOD)) as running:
        yield running


def _choose(server: OpenAIServer, *, timeout_s: float = 2.0, retries: int = 1) -> tuple[Orchestration, float]:
    # The full prompt shape: the model also picks the numbers, whose clamps this file checks
    # (the compact shape the worker uses by default: test_llm_words.py).
    orchestrator = LLMOrchestrator(
        base_url=server.base_url,
        model="test-model",
        api_key="sk-test",
        timeout_s=timeout_s,
        retries=retries,
        prompt_shape="full",
    )
    started = time.perf_counter()
    result = asyncio.run(orchestrator.choose(TRADER, DNA))
    return result, time.perf_counter() - started


def test_request_is_what_llama_cpp_accepts(server: OpenAIServer) -> None:
    server.reset("ok")
    result, _ = _choose(server)
    assert result.orchestrator == "llm"
    assert result.params.to_dict() == GOOD
    body: dict[str, Any] = server.requests[0].body
    # One user message (Gemma drops system messages), function calling forced by name.
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": TOOL_NAME}}
    parameters = body["tools"][0]["function"]["parameters"]
    assert parameters["properties"]["palette"]["enum"] == list(DNA.palettes)
    assert parameters["properties"]["energy"]["maximum"] == DNA.ranges["energy"].high
    # No json_schema response_format (llama.cpp refuses it); max_tokens, not max_completion_tokens.
    assert "response_format" not in body
    assert body["max_tokens"] == 256
    assert "max_completion_tokens" not in body
    assert body["temperature"] == 0
    assert body["seed"] == 0
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
    provenance = result.provenance
    assert provenance["model"] == "test-model"
    assert provenance["response_sha256"] == hashlib.sha256(canonical_json(GOOD)).hexdigest()
    assert provenance["clamps"] == []
    assert provenance["fallback"] is None


def test_out_of_bounds_values_are_clamped_and_recorded(server: OpenAIServer) -> None:
    server.reset("out_of_bounds")
    result, _ = _choose(server)
    assert result.orchestrator == "llm"
    params = result.params
    assert params.complexity == DNA.ranges["complexity"].high  # 999 → the top, not the baseline
    assert params.energy == DNA.ranges["energy"].low  # -40 → the bottom
    assert params.hue_shift == DNA.ranges["hue_shift"].high  # 1e9
    assert params.symmetry == 55  # in bounds: kept
    assert params.medium == "neon"  # "NEON": case-folded
    assert params.motif == "flow"  # in bounds: kept
    assert params.palette == BASELINE.palette  # "hot pink": no such palette
    assert params.mood == BASELINE.mood
    assert params.grain == BASELINE.grain
    clamped = {c["field"]: c for c in result.provenance["clamps"]}
    assert set(clamped) == {"complexity", "energy", "hue_shift", "medium", "palette", "mood", "grain"}
    assert clamped["complexity"]["reason"] == "outside [1, 10]"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("malformed", "malformed"), ("refusal", "refusal"), ("429", "rate_limited"), ("500", "http_500")],
)
def test_failures_fall_back_to_rule_based_with_the_reason(server: OpenAIServer, mode: str, reason: str) -> None:
    server.reset(mode)
    result, _ = _choose(server)
    assert result.orchestrator == "rule-based"
    assert result.params == BASELINE
    assert result.persona == PERSONA
    assert result.provenance["fallback"]["reason"] == reason
    if mode in ("429", "500"):
        assert len(server.requests) == 2  # retried once, then gave up
    if mode in ("malformed", "refusal"):
        assert result.provenance["fallback"]["response_sha256"]


def test_a_slow_server_costs_at_most_the_deadline(server: OpenAIServer) -> None:
    server.reset("timeout")
    server.delay_s = 5.0
    result, seconds = _choose(server, timeout_s=0.3, retries=1)
    assert result.orchestrator == "rule-based"
    assert result.provenance["fallback"]["reason"] == "timeout"
    assert seconds < 0.3 * 2 + 2.5  # two attempts + backoff, never the server's 5 s


def test_a_429_then_an_answer_is_retried_and_used(server: OpenAIServer) -> None:
    server.reset("ok", script=["429"])
    result, _ = _choose(server)
    assert result.orchestrator == "llm"
    assert result.params.to_dict() == GOOD
    assert len(server.requests) == 2


def test_same_inputs_send_the_same_request(server: OpenAIServer) -> None:
    server.reset("ok")
    first, _ = _choose(server)
    second, _ = _choose(server)
    assert server.requests[0].body == server.requests[1].body
    assert first == second


arguments = st.one_of(
    st.text(max_size=40),
    st.builds(
        json.dumps,
        st.dictionaries(
            st.sampled_from([*CHOICE_FIELDS, *NUMERIC_FIELDS, "junk"]),
            st.one_of(st.integers(-(10**20), 10**20), st.text(max_size=8), st.none(), st.floats(), st.booleans()),
            max_size=10,
        ),
    ),
    st.builds(json.dumps, st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.none())),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=arguments)
def test_any_answer_on_the_wire_gives_bounded_params_or_the_fallback(server: OpenAIServer, raw: str) -> None:
    server.reset("ok", arguments=raw)
    result, _ = _choose(server, retries=0)
    DNA.validate(result.params)
    json.dumps(result.provenance)
    if result.orchestrator == "rule-based":
        assert result.params == BASELINE
        assert result.provenance["fallback"]["reason"] in ("malformed", "refusal")
