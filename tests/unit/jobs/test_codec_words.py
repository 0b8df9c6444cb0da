"""An Orchestration saved before words existed still decodes, and its token keeps the old name."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from jobs.codec import decode_output, encode_output
from jobs.model import Stage
from personalization.orchestrator import Orchestration
from personalization.orchestrator.rule_based import RuleBasedOrchestrator
from personalization.style import load_style_dna
from pipeline.provenance import token_words
from tests.support.archetypes import ARCHETYPES

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_a_style_stage_saved_before_words_decodes_with_none_and_the_old_name() -> None:
    saved = asyncio.run(RuleBasedOrchestrator().choose(ARCHETYPES["gamer"], DNA))
    old = json.loads(encode_output(saved))
    del old["words"]  # what a record written before this change holds
    decoded = decode_output(Stage.STYLE, json.dumps(old).encode())
    assert isinstance(decoded, Orchestration)
    assert decoded.words is None
    assert decoded.params == saved.params
    assert token_words(DNA, decoded, RECIPIENT, 2) == (f"{DNA.name} · 0x7099…79C8 #2", DNA.description)


def test_words_survive_the_record() -> None:
    saved = asyncio.run(RuleBasedOrchestrator().choose(ARCHETYPES["trader"], DNA))
    decoded = decode_output(Stage.STYLE, encode_output(saved))
    assert decoded == saved
    assert isinstance(decoded, Orchestration)
    assert decoded.words is not None
    assert token_words(DNA, decoded, RECIPIENT, 0) == (f"{decoded.words.name} #0", decoded.words.description)
