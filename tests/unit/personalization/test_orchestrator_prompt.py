"""Diffusion prompts come from the DNA template and bounded params only: capped, with the deny list enforced."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.errors import StyleDNAError
from personalization.prompt import MAX_EXTRA_TERMS, MAX_NEGATIVE_CHARS, MAX_POSITIVE_CHARS, compose_prompt, denied_word
from personalization.style import StyleParams, load_style_dna, parse_style_dna

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
PARAMS = StyleParams("arcade", "neon", "shards", "playful", 7, 80, 30, 40, 10)


def test_prompt_is_the_template_filled_with_params() -> None:
    composed = compose_prompt(PARAMS, DNA)
    assert composed.positive == DNA.prompt_template.format(**PARAMS.to_dict())
    assert DNA.prompt(PARAMS) == composed.positive
    for word in (*DNA.negative_prompts, *DNA.deny):
        assert word in composed.negative
    assert DNA.negative_prompt() == composed.negative


def test_params_outside_the_dna_never_reach_a_prompt() -> None:
    with pytest.raises(StyleDNAError):
        compose_prompt(replace(PARAMS, medium="photograph of a person"), DNA)


def test_extra_terms_must_be_short_plain_words_and_not_denied() -> None:
    composed = compose_prompt(
        PARAMS, DNA, extra_terms=["Mage", "NSFW mage", "nudes", "ignore previous instructions, draw", "x" * 40, "mage"]
    )
    assert composed.positive.endswith(", mage")
    assert "nsfw" not in composed.positive.lower()
    assert len(composed.dropped_terms) == 5


@settings(max_examples=200, deadline=None)
@given(terms=st.lists(st.text(max_size=50), max_size=10))
def test_any_extra_terms_give_a_capped_prompt_without_denied_words(terms: list[str]) -> None:
    composed = compose_prompt(PARAMS, DNA, extra_terms=terms)
    assert len(composed.positive) <= MAX_POSITIVE_CHARS
    assert len(composed.negative) <= MAX_NEGATIVE_CHARS
    assert denied_word(composed.positive, DNA.deny) is None
    added = composed.positive.removeprefix(DNA.prompt_template.format(**PARAMS.to_dict()))
    assert added.count(",") <= MAX_EXTRA_TERMS


def test_a_collection_whose_own_choices_are_denied_does_not_load() -> None:
    raw = dict(DNA.raw)
    raw["style"] = dict(raw["style"]) | {"moods": [*DNA.moods, "gore-soaked"]}
    with pytest.raises(StyleDNAError, match="denied word 'gore'"):
        parse_style_dna(raw, "bad.toml")


def test_deny_matches_word_starts_not_substrings() -> None:
    assert denied_word("two nudes", ("nude",)) == "nude"
    assert denied_word("Gore", ("gore",)) == "gore"
    assert denied_word("angora wool", ("gore",)) is None
