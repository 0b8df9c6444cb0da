"""The LLM orchestrator's contract, without a network: schema from the DNA, prompt shape, and

whatever the model returns → params inside the bounds (or the rule-based fallback), never an exception.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

from personalization.context_apply import apply_context_style
from personalization.orchestrator.llm import (
    TOOL_NAME,
    LLMMalformed,
    LLMOrchestrator,
    build_prompt,
    interpret_answer,
    style_schema,
)
from personalization.orchestrator.rule_based import rule_based_params
from personalization.style import CHOICE_FIELDS, NUMERIC_FIELDS, StyleParams, load_style_dna
from tests.support.archetypes import ARCHETYPES

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
GAMER = ARCHETYPES["gamer"]
BASELINE, PERSONA = rule_based_params(GAMER, DNA)
# The gamer sends app context; whatever chose the params, the collection's context rules then move them.
STYLED, _ = apply_context_style(BASELINE, GAMER.context, DNA)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from([c for name in CHOICE_FIELDS for c in DNA.choices(name)]),
    st.sampled_from(["DAWN", " neon ", "Ink", "12", "-3.7", "1e999", "nan"]),
    st.integers(min_value=-1000, max_value=1000),
)
# Objects shaped like an answer (some style keys, some junk), and anything else JSON can be.
answers = st.one_of(
    st.dictionaries(st.sampled_from([*CHOICE_FIELDS, *NUMERIC_FIELDS, "persona", "why"]), field_values, max_size=11),
    json_values,
)


def test_schema_is_generated_from_the_dna() -> None:
    schema = style_schema(DNA)
    assert schema["title"] == TOOL_NAME
    assert schema["additionalProperties"] is False
    assert schema["required"] == [*CHOICE_FIELDS, *NUMERIC_FIELDS]
    for name in CHOICE_FIELDS:
        assert schema["properties"][name]["enum"] == list(DNA.choices(name))
    for name in NUMERIC_FIELDS:
        prop = schema["properties"][name]
        assert (prop["type"], prop["minimum"], prop["maximum"]) == (
            "integer",
            DNA.ranges[name].low,
            DNA.ranges[name].high,
        )


def test_prompt_carries_bounds_features_and_baseline_but_no_address() -> None:
    prompt = build_prompt(GAMER, DNA, BASELINE, PERSONA)
    assert TOOL_NAME in prompt
    for name in CHOICE_FIELDS:
        assert "|".join(DNA.choices(name)) in prompt
    assert GAMER.address.lower() not in prompt.lower()
    assert '"gaming":60' in prompt
    assert '"class":"mage"' in prompt
    assert BASELINE.canonical_json().decode() in prompt


def test_huge_app_context_is_left_out_whole_keys_at_a_time() -> None:
    from dataclasses import replace

    profile = replace(GAMER, context={"a_small": 1, "b_big": "x" * 5000, "c_small": "ok"})
    prompt = build_prompt(profile, DNA, BASELINE, PERSONA)
    assert '"a_small":1' in prompt
    assert '"c_small":"ok"' in prompt
    assert "xxxx" not in prompt


def test_in_bounds_answer_is_kept_verbatim() -> None:
    answer = {"palette": "gallery", "medium": "oil", "motif": "rings", "mood": "serene"} | {
        name: DNA.ranges[name].low for name in NUMERIC_FIELDS
    }
    params, clamps = interpret_answer(answer, DNA, BASELINE)
    assert params.to_dict() == answer
    assert clamps == []


def test_out_of_bounds_values_are_clamped_not_replaced() -> None:
    answer = BASELINE.to_dict() | {"complexity": 99, "energy": -5, "hue_shift": 30.4, "medium": "NEON"}
    params, clamps = interpret_answer(answer, DNA, BASELINE)
    assert params.complexity == DNA.ranges["complexity"].high
    assert params.energy == DNA.ranges["energy"].low
    assert params.hue_shift == 30
    assert params.medium == "neon"
    assert {c["field"] for c in clamps} == {"complexity", "energy", "hue_shift", "medium"}


@pytest.mark.parametrize("answer", [None, [], "dawn", 7, {}, {"why": "because"}])
def test_answers_without_any_style_field_are_malformed(answer: Any) -> None:
    with pytest.raises(LLMMalformed):
        interpret_answer(answer, DNA, BASELINE)


@settings(max_examples=400, deadline=None)
@given(answer=answers)
def test_any_json_becomes_params_inside_the_bounds_or_malformed(answer: Any) -> None:
    try:
        params, clamps = interpret_answer(answer, DNA, BASELINE)
    except LLMMalformed:
        return
    DNA.validate(params)
    for clamp in clamps:
        json.dumps(clamp)  # provenance must stay serialisable
    # Every in-bounds value the model gave survives untouched.
    for name in CHOICE_FIELDS:
        if answer.get(name) in DNA.choices(name):
            assert getattr(params, name) == answer[name]
    for name in NUMERIC_FIELDS:
        value = answer.get(name)
        if type(value) is int and DNA.ranges[name].low <= value <= DNA.ranges[name].high:
            assert getattr(params, name) == value


class ScriptedModel:
    """Stands in for ChatOpenAI.with_structured_output: returns what a script says, or raises."""

    def __init__(self) -> None:
        self.answer: Any = None
        self.error: BaseException | None = None
        self.calls = 0

    def with_structured_output(self, schema: dict[str, Any], **kwargs: Any) -> Any:
        assert kwargs["method"] == "function_calling"
        assert kwargs["include_raw"] is True

        async def respond(messages: Any) -> dict[str, Any]:
            self.calls += 1
            assert [m.type for m in messages] == ["human"]  # Gemma drops system messages
            if self.error is not None:
                raise self.error
            raw = AIMessage(content="", tool_calls=[{"name": TOOL_NAME, "args": {"x": 1}, "id": "1"}])
            return {"raw": raw, "parsed": self.answer, "parsing_error": None}

        return RunnableLambda(respond)


def _orchestrator(model: ScriptedModel, shape: str = "compact") -> LLMOrchestrator:
    return LLMOrchestrator(
        base_url="http://unused.invalid", model="scripted", chat_model=model, timeout_s=1, prompt_shape=shape
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers)
def test_orchestrator_never_raises_and_stays_inside_the_bounds(answer: Any) -> None:
    model = ScriptedModel()
    model.answer = answer
    result = asyncio.run(_orchestrator(model).choose(GAMER, DNA))
    DNA.validate(result.params)
    provenance = result.provenance
    json.dumps(provenance)
    assert provenance["prompt_sha256"]
    assert provenance["model"] == "scripted"
    if result.orchestrator == "llm":
        assert provenance["fallback"] is None
        assert provenance["response_sha256"]
    else:
        assert result.params == STYLED
        assert provenance["fallback"]["reason"] in ("malformed", "refusal")
    assert provenance["context_style"]["rules"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [(TimeoutError(), "timeout"), (RuntimeError("boom"), "error:RuntimeError"), (ValueError("x"), "error:ValueError")],
)
def test_exceptions_from_the_model_end_in_the_recorded_fallback(error: BaseException, reason: str) -> None:
    model = ScriptedModel()
    model.error = error
    result = asyncio.run(_orchestrator(model).choose(GAMER, DNA))
    assert result.orchestrator == "rule-based"
    assert result.params == STYLED
    assert result.persona == PERSONA
    assert result.provenance["fallback"]["reason"] == reason


def test_same_inputs_same_prompt_hash_different_inputs_different_hash() -> None:
    model = ScriptedModel()
    model.answer = BASELINE.to_dict()
    orchestrator = _orchestrator(model)
    first = asyncio.run(orchestrator.choose(GAMER, DNA))
    again = asyncio.run(orchestrator.choose(GAMER, DNA))
    other = asyncio.run(orchestrator.choose(ARCHETYPES["trader"], DNA))
    assert first == again
    assert first.provenance["prompt_sha256"] != other.provenance["prompt_sha256"]


def test_remembered_answers_are_reused_and_only_successes_are_stored() -> None:
    class Store:
        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        async def get(self, key: str) -> bytes | None:
            return self.data.get(key)

        async def set(self, key: str, value: bytes, px: int) -> None:
            self.data[key] = value

    store = Store()
    model = ScriptedModel()
    model.error = RuntimeError("down")
    orchestrator = LLMOrchestrator(base_url="http://unused.invalid", model="m", chat_model=model, answers=store)
    assert asyncio.run(orchestrator.choose(GAMER, DNA)).orchestrator == "rule-based"
    assert store.data == {}
    model.error = None
    model.answer = BASELINE.to_dict() | {"palette": "gallery"}
    first = asyncio.run(orchestrator.choose(GAMER, DNA))
    assert first.orchestrator == "llm"
    assert len(store.data) == 1
    model.answer = BASELINE.to_dict() | {"palette": "dawn"}  # a provider that changed its mind
    calls = model.calls
    again = asyncio.run(orchestrator.choose(GAMER, DNA))
    assert again.params == first.params
    assert again.params.palette == "gallery"
    assert model.calls == calls  # answered from the store
    assert isinstance(again.params, StyleParams)


def test_the_model_s_choice_is_moved_by_the_context_rules_once_and_stored_before_them() -> None:
    class Store:
        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        async def get(self, key: str) -> bytes | None:
            return self.data.get(key)

        async def set(self, key: str, value: bytes, px: int) -> None:
            self.data[key] = value

    store = Store()
    model = ScriptedModel()
    model.answer = BASELINE.to_dict() | {"motif": "flow", "complexity": 2, "energy": 10}
    orchestrator = LLMOrchestrator(
        base_url="http://unused.invalid", model="m", chat_model=model, answers=store, prompt_shape="full"
    )
    first = asyncio.run(orchestrator.choose(GAMER, DNA))
    assert first.orchestrator == "llm"
    # The gamer is a mage with 5 achievements and 500 hours: motif set, +3 complexity, +30 energy.
    assert (first.params.motif, first.params.complexity, first.params.energy) == ("shards", 5, 40)
    assert first.provenance["context_style"]["changed"]["motif"] == {"from": "flow", "to": "shards"}
    (stored,) = store.data.values()
    assert json.loads(stored)["params"]["motif"] == "flow"  # the answer, not the styled params
    again = asyncio.run(orchestrator.choose(GAMER, DNA))  # from the store: moved once, not twice
    assert again.params == first.params
