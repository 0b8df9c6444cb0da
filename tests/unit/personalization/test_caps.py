"""Rarity caps: `[style.caps]` parsed and refused at load, the limit rule, and the rankings next-best comes from."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personalization.caps import PPM, Cap, parse_style_caps
from personalization.caps_apply import rank, with_caps
from personalization.errors import StyleDNAError
from personalization.orchestrator import Orchestration
from personalization.orchestrator.rule_based import ranked_choices, rule_based_params
from personalization.style import CHOICE_FIELDS, parse_style_dna
from tests.support.archetypes import ARCHETYPES, BLANK

RAW = tomllib.loads((Path(__file__).resolve().parents[3] / "collections" / "default.toml").read_text())


def dna_with(caps: Any) -> Any:
    raw = copy.deepcopy(RAW)
    raw["style"]["caps"] = caps
    return parse_style_dna(raw, "test.toml")


def test_both_forms_parse_and_state_their_limits() -> None:
    dna = dna_with(
        {"palette": {"bullion": {"share": 0.02}}, "motif": {"rings": {"max": 5}, "shards": {"max": 40, "share": 0.1}}}
    )
    bullion = dna.caps.cap_of("palette", "bullion")
    assert bullion == Cap(share_ppm=20_000, min_total=50)
    # One of the first 50 tokens, two of the first 100, then never more than 2 %.
    assert [bullion.limit(n) for n in (1, 49, 50, 99, 100, 149, 150, 1000)] == [1, 1, 1, 1, 2, 2, 3, 20]
    assert dna.caps.cap_of("motif", "rings") == Cap(max=5)
    assert [dna.caps.cap_of("motif", "shards").limit(n) for n in (1, 100, 399, 400, 10_000)] == [1, 10, 39, 40, 40]  # type: ignore[union-attr]
    assert dna.caps.cap_of("palette", "dawn") is None
    assert dna.caps.script_form()["palette"] == {"bullion": {"share_ppm": 20_000, "min_total": 50}}
    assert bullion.describe() == {"share": 0.02, "min_total": 50}
    # Integer arithmetic: 0.29 of 100 tokens is 29 (the float product is 28.999…).
    assert Cap(share_ppm=round(0.29 * PPM), min_total=1).limit(100) == 29
    assert dna_with({"palette": {"bullion": {"share": 0.5, "min_total": 10}}}).caps.cap_of("palette", "bullion") == Cap(
        share_ppm=500_000, min_total=10
    )


def test_a_collection_without_caps_has_none() -> None:
    assert not parse_style_dna(copy.deepcopy(RAW), "test.toml").caps
    assert not dna_with({}).caps


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ({"colour": {"bullion": {"max": 1}}}, "not a choice field"),
        ({"complexity": {"3": {"max": 1}}}, "not a choice field"),
        ({"palette": {"gold": {"max": 1}}}, "not one of the DNA's palettes"),
        ({"palette": {"bullion": {"share": 0}}}, r"share must be a number in \(0, 1\]"),
        ({"palette": {"bullion": {"share": 1.5}}}, r"share must be a number in \(0, 1\]"),
        ({"palette": {"bullion": {"share": -0.1}}}, r"share must be a number in \(0, 1\]"),
        ({"palette": {"bullion": {"share": True}}}, r"share must be a number in \(0, 1\]"),
        ({"palette": {"bullion": {"share": "2%"}}}, r"share must be a number in \(0, 1\]"),
        ({"palette": {"bullion": {"share": 1e-9}}}, "below one per million"),
        ({"palette": {"bullion": {"max": -1}}}, "max must be an integer >= 0"),
        ({"palette": {"bullion": {"max": 1.5}}}, "max must be an integer >= 0"),
        ({"palette": {"bullion": {"max": True}}}, "max must be an integer >= 0"),
        ({"palette": {"bullion": {}}}, "needs max or share"),
        ({"palette": {"bullion": {"max": 1, "rare": True}}}, "unknown keys"),
        ({"palette": {"bullion": {"max": 1, "min_total": 10}}}, "min_total applies only with a share"),
        ({"palette": {"bullion": {"share": 0.1, "min_total": 0}}}, "min_total must be an integer >= 1"),
        ({"palette": {"bullion": 5}}, "must be a table"),
        ({"palette": ["bullion"]}, "must be a table of values"),
        ([1], "must be a table of choice fields"),
        ({"mood": {mood: {"max": 3} for mood in RAW["style"]["moods"]}}, "caps every mood"),
    ],
)
def test_bad_caps_are_refused_at_load(caps: Any, message: str) -> None:
    with pytest.raises(StyleDNAError, match=message):
        dna_with(caps)


@given(share=st.integers(1, PPM), tokens=st.integers(1, 10**7), min_total=st.none() | st.integers(1, 10**4))
def test_a_share_cap_never_passes_its_share_once_past_its_floor(share: int, tokens: int, min_total: int | None) -> None:
    raw: dict[str, Any] = {"share": share / PPM}
    if min_total is not None:
        raw["min_total"] = min_total
    cap = parse_style_caps({"palette": {"bullion": raw}}, {"palette": ("bullion", "dawn")}, "t").cap_of(
        "palette", "bullion"
    )
    assert cap is not None
    limit = cap.limit(tokens)
    if tokens >= cap.min_total:
        assert limit * PPM <= cap.share_ppm * tokens  # at most the share of the tokens there are
    if min_total is None:
        assert limit >= 1  # the default floor: the first tokens may have it
    assert limit <= cap.limit(tokens + 1)  # more tokens never lower the limit


DNA = dna_with({"palette": {"bullion": {"max": 5}}})


@pytest.mark.parametrize("archetype", sorted(ARCHETYPES))
def test_the_rule_based_ranking_starts_with_its_choice_and_holds_every_value(archetype: str) -> None:
    profile = ARCHETYPES[archetype]
    rankings = ranked_choices(profile, DNA)
    params, _ = rule_based_params(profile, DNA)
    assert list(rankings) == list(CHOICE_FIELDS)
    for name in CHOICE_FIELDS:
        assert rankings[name][0] == getattr(params, name)
        assert sorted(rankings[name]) == sorted(DNA.choices(name))
    assert ranked_choices(profile, DNA) == rankings  # deterministic


def test_the_next_best_is_the_wallet_s_own_and_not_the_same_for_every_wallet() -> None:
    whales = [replace(ARCHETYPES["whale"], tx_count=30 + n) for n in range(12)]
    second = {ranked_choices(whale, DNA)["palette"][1] for whale in whales}
    assert all(ranked_choices(whale, DNA)["palette"][0] == "bullion" for whale in whales)
    assert len(second) > 1  # a capped bullion's overflow spreads over the other palettes
    assert "bullion" not in second


def test_any_orchestrator_s_choice_ranks_first_then_the_rule_based_order() -> None:
    baseline = ranked_choices(BLANK, DNA)
    params, _ = rule_based_params(BLANK, DNA)
    llm_choice = replace(params, palette="bullion", mood="opulent")
    rankings = rank(llm_choice, baseline)
    assert rankings["palette"] == ("bullion", *(p for p in baseline["palette"] if p != "bullion"))
    assert rankings["mood"][0] == "opulent"
    assert rankings["medium"] == baseline["medium"]
    assert all(sorted(rankings[name]) == sorted(baseline[name]) for name in CHOICE_FIELDS)


def test_what_a_cap_moved_is_recorded_and_nothing_else_changes() -> None:
    params, _ = rule_based_params(ARCHETYPES["whale"], DNA)
    chosen = Orchestration(params=params, orchestrator="rule-based", persona="whale", provenance={"persona": "whale"})
    rankings = rank(params, ranked_choices(ARCHETYPES["whale"], DNA))
    next_best = rankings["palette"][1]
    capped = with_caps(chosen, rankings, {**{n: r[0] for n, r in rankings.items()}, "palette": next_best}, DNA.caps)
    assert capped.params == replace(params, palette=next_best)
    assert capped.provenance == {
        "persona": "whale",
        "caps": [{"field": "palette", "wanted": "bullion", "got": next_best, "cap": {"max": 5}}],
    }
    # Nothing capped: the very orchestration, provenance without a `caps` key (metadata unchanged).
    assert with_caps(chosen, rankings, {n: r[0] for n, r in rankings.items()}, DNA.caps) is chosen
