"""The worker's LLM path (the compact prompt) over real HTTP: the model's name and description, checked.

The OpenAI-protocol shim (tests/support/openai_server.py) scripts the answers; the real
ChatOpenAI and openai client run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from personalization.orchestrator import Orchestration, build_orchestrator
from personalization.orchestrator.llm import static_prefix
from personalization.orchestrator.rule_based import RuleBasedOrchestrator, rule_based_params
from personalization.style import NUMERIC_FIELDS, load_style_dna
from pipeline.provenance import token_words
from tests.support.archetypes import ARCHETYPES
from tests.support.openai_server import OpenAIServer

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
TRADER = ARCHETYPES["trader"]
BASELINE, PERSONA = rule_based_params(TRADER, DNA)
CHOICES = {"palette": "gallery", "medium": "oil", "motif": "rings", "mood": "serene"}
NAME = "Quiet Rings of Ledgers"
DESCRIPTION = "Slow golden rings for a wallet that trades with patience."


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def _choose(server: OpenAIServer, answer: dict[str, Any]) -> Orchestration:
    server.reset("ok", arguments=json.dumps(answer))
    orchestrator = build_orchestrator(server.base_url, "test-model", "sk-test", 2.0, retries=0)
    return asyncio.run(orchestrator.choose(TRADER, DNA))


def test_the_model_s_words_are_used_and_the_numbers_are_the_rubric_s(server: OpenAIServer) -> None:
    result = _choose(server, {**CHOICES, "name": NAME, "description": DESCRIPTION})
    assert result.orchestrator == "llm"
    assert result.words is not None
    assert (result.words.name, result.words.description, result.words.source) == (NAME, DESCRIPTION, "model")
    assert {name: getattr(result.params, name) for name in CHOICES} == CHOICES
    for name in NUMERIC_FIELDS:
        assert getattr(result.params, name) == getattr(BASELINE, name)
    assert result.provenance["clamps"] == []
    body = server.requests[0].body
    parameters = body["tools"][0]["function"]["parameters"]
    assert parameters["required"] == ["palette", "medium", "motif", "mood", "name", "description"]
    # The static part opens the one user message, the wallet's line closes it.
    content = body["messages"][0]["content"]
    assert content.startswith(static_prefix(DNA))
    assert content.splitlines()[-1].startswith("Wallet: persona trader")
    assert TRADER.address.lower()[2:10] not in content.lower()


def test_the_static_prefix_is_the_same_for_every_wallet(server: OpenAIServer) -> None:
    prompts = []
    for profile in ARCHETYPES.values():
        server.reset("ok", arguments=json.dumps({**CHOICES, "name": NAME, "description": DESCRIPTION}))
        asyncio.run(build_orchestrator(server.base_url, "m", None, 2.0, retries=0).choose(profile, DNA))
        prompts.append(server.requests[0].body["messages"][0]["content"])
    prefix = static_prefix(DNA)
    assert all(prompt.startswith(prefix) for prompt in prompts)
    assert all(len(prompt) - len(prefix) < 200 for prompt in prompts)  # the wallet's part stays short


@pytest.mark.parametrize(
    ("name", "description", "reason", "kept"),
    [
        ("Nude Rings", DESCRIPTION, "name:denied", "description"),
        (f"Rings of {TRADER.address}", DESCRIPTION, "name:address", "description"),
        (f"Rings {TRADER.address[-4:]}", DESCRIPTION, "name:address", "description"),
        (
            NAME,
            "Des anneaux lents et dorés pour un portefeuille qui échange avec patience et calme.",
            "description:language",
            "name",
        ),
        ("", DESCRIPTION, "name:missing", "description"),
    ],
)
def test_words_that_break_a_bound_are_replaced_by_the_template_and_recorded(
    server: OpenAIServer, name: str, description: str, reason: str, kept: str
) -> None:
    result = _choose(server, {**CHOICES, "name": name, "description": description})
    assert result.orchestrator == "llm"
    words = result.words
    assert words is not None
    assert words.source == "replaced"
    assert reason in words.reasons
    template = asyncio.run(RuleBasedOrchestrator().choose(TRADER, DNA)).words
    assert template is not None
    replaced = "name" if kept == "description" else "description"
    # The template of the model's choices, not of the rubric's.
    assert getattr(words, replaced) != getattr(template, replaced)
    assert getattr(words, kept) == {"name": name, "description": description}[kept]
    metadata_name, _ = token_words(DNA, result, TRADER.address, 3)
    assert TRADER.address[-4:].lower() not in metadata_name.lower()
    assert metadata_name.endswith(" #3")


def test_too_long_words_are_clamped_and_recorded(server: OpenAIServer) -> None:
    long_description = ("Slow golden rings for a wallet that trades with patience, " * 5).strip()
    result = _choose(server, {**CHOICES, "name": NAME, "description": long_description})
    assert result.words is not None
    assert result.words.source == "clamped"
    assert result.words.reasons == ("description:too_long",)
    assert len(result.words.description) <= DNA.words.description_max


def test_a_failed_answer_falls_back_to_the_template_words(server: OpenAIServer) -> None:
    server.reset("500")
    result = asyncio.run(build_orchestrator(server.base_url, "m", None, 2.0, retries=0).choose(TRADER, DNA))
    assert result.orchestrator == "rule-based"
    template = asyncio.run(RuleBasedOrchestrator().choose(TRADER, DNA)).words
    assert result.words == template
    assert result.words is not None
    assert result.words.source == "template"
