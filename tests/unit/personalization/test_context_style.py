"""App context moves the style by the collection's declared `[style.context]` rules, and only by them."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from personalization.bounds import clamp_params
from personalization.context import ContextError
from personalization.context_apply import apply_context_style
from personalization.context_style import ContextStyleError, is_seal, seal_of
from personalization.errors import StyleDNAError
from personalization.orchestrator.base import Orchestration
from personalization.orchestrator.rule_based import RuleBasedOrchestrator
from personalization.profile import WalletProfile
from personalization.style import NUMERIC_FIELDS, StyleParams, load_style_dna, parse_style_dna
from tests.support.archetypes import ARCHETYPES

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
SCHEMA = DNA.context_schema
# One value per declared field that its rule turns into a change for these wallets.
MOVING = {"achievements": ["first-blood"], "hours": 300, "level": 50, "class": "bard", "guild": "owls"}
WALLETS = {name: replace(ARCHETYPES[name], context={}) for name in ("newcomer", "gamer")}


def choose(profile: WalletProfile, context: dict[str, Any]) -> Orchestration:
    return asyncio.run(RuleBasedOrchestrator().choose(replace(profile, context=context), DNA))


def test_every_declared_context_field_has_a_rule() -> None:
    assert sorted(DNA.context_style.fields()) == sorted(SCHEMA.fields) == sorted(MOVING)


@pytest.mark.parametrize("wallet", sorted(WALLETS))
@pytest.mark.parametrize("field", sorted(MOVING))
def test_every_declared_context_field_changes_the_params(wallet: str, field: str) -> None:
    plain = choose(WALLETS[wallet], {})
    moved = choose(WALLETS[wallet], SCHEMA.validate({field: MOVING[field]}))
    assert moved.params != plain.params
    DNA.validate(moved.params)
    record = moved.provenance["context_style"]
    assert {rule["field"] for rule in record["rules"]} == {field}
    assert record["changed"], record


def test_the_default_rules_as_the_readme_states_them() -> None:
    newcomer = WALLETS["newcomer"]  # complexity 2, energy 12, motif terrain, no seal
    base = choose(newcomer, {}).params
    assert (base.complexity, base.energy, base.motif, base.seal) == (2, 12, "terrain", UNSET)
    complexity = {n: choose(newcomer, {"achievements": [str(i) for i in range(n)]}).params.complexity for n in range(6)}
    assert complexity == {0: 2, 1: 3, 2: 4, 3: 5, 4: 5, 5: 5}  # +1 each, at most +3
    level = {n: choose(newcomer, {"level": n}).params.complexity for n in (0, 24, 25, 49, 50, 1000)}
    assert level == {0: 2, 24: 2, 25: 3, 49: 3, 50: 4, 1000: 4}  # +1 per 25 levels, at most +2
    energy = {n: choose(newcomer, {"hours": n}).params.energy for n in (9, 10, 155, 300, 100_000)}
    assert energy == {9: 12, 10: 13, 155: 27, 300: 42, 100_000: 42}  # +1 per 10 hours, at most +30
    motifs = {value: choose(newcomer, {"class": value}).params.motif for value in SCHEMA.fields["class"].values}
    assert motifs == {
        "mage": "shards",
        "warrior": "grid",
        "rogue": "constellation",
        "healer": "rings",
        "ranger": "terrain",
        "bard": "flow",
    }
    assert choose(newcomer, {"guild": "Owls"}).params.seal == seal_of("owls") == seal_of("  OWLS ")


def test_offsets_add_up_and_the_sum_is_clamped_into_the_range_with_the_clamp_recorded() -> None:
    trader = replace(ARCHETYPES["trader"], context={})  # complexity 9, energy 100
    moved = choose(trader, {"achievements": ["a", "b", "c"], "level": 50, "hours": 40})
    assert moved.params.complexity == DNA.ranges["complexity"].high
    assert moved.params.energy == DNA.ranges["energy"].high
    record = moved.provenance["context_style"]
    assert record["rules"] == [
        {"field": "achievements", "style": "complexity", "add": 3},
        {"field": "level", "style": "complexity", "add": 2},
        {"field": "hours", "style": "energy", "add": 4},
    ]
    assert record["changed"] == {
        "complexity": {"from": 9, "to": 10, "proposed": 14},
        "energy": {"from": 100, "to": 100, "proposed": 104},
    }


@pytest.mark.parametrize(
    "empty",
    [{}, {"achievements": []}, {"guild": ""}, {"guild": "   "}, {"achievements": [], "guild": ""}, {"level": 0}],
)
def test_an_empty_context_is_no_context(empty: dict[str, Any]) -> None:
    for profile in WALLETS.values():
        assert choose(profile, SCHEMA.validate(empty)) == choose(profile, {})
        # Even unvalidated (a profile saved before validate dropped empty values): the same.
        assert choose(profile, empty) == choose(profile, {})
    assert SCHEMA.validate({"achievements": [], "guild": " "}) == {}


def test_context_does_not_shift_the_rule_based_choice_for_a_collection_with_other_names() -> None:
    # Choices outside the personas' names come from a digest of the features; the context is not in it.
    raw = copy.deepcopy(DNA.raw)
    raw["style"]["motifs"] = ["spiral", "lattice", "tide"]
    del raw["style"]["context"]["class"]
    dna = parse_style_dna(raw, "other.toml")
    profile = WALLETS["gamer"]
    plain = asyncio.run(RuleBasedOrchestrator().choose(profile, dna))
    with_context = asyncio.run(RuleBasedOrchestrator().choose(replace(profile, context={"hours": 5}), dna))
    assert with_context == plain


def test_a_seal_is_eight_hex_digits_of_the_normalised_name() -> None:
    assert is_seal(seal_of("owls"))
    assert seal_of("owls") != seal_of("moles")
    assert seal_of("Ｏwls") != seal_of("owls")  # NFC, not compatibility folding: a full-width O is another name
    assert seal_of("e\u0301") == seal_of("\u00e9")  # composed and decomposed é are one name


def test_params_without_a_seal_keep_their_identity_and_a_seal_joins_it() -> None:
    base = choose(WALLETS["gamer"], {}).params
    assert "seal" not in base.to_dict()
    assert b"seal" not in base.canonical_json()
    sealed = replace(base, seal=seal_of("owls"))
    assert sealed.to_dict()["seal"] == seal_of("owls")
    assert sealed.sha256() != base.sha256()
    assert StyleParams.from_dict(sealed.to_dict()) == sealed
    assert StyleParams.from_dict(base.to_dict()) == base  # params saved before seals load as seal-less


def test_the_dna_admits_a_seal_only_where_a_rule_draws_one_and_only_well_formed() -> None:
    base = choose(WALLETS["gamer"], {}).params
    DNA.validate(replace(base, seal="0123abcd"))
    for bad in ("0123ABCD", "0123abc", "0123abcde", "g123abcd", None, 7):
        with pytest.raises(StyleDNAError, match="seal"):
            DNA.validate(replace(base, seal=bad))  # type: ignore[arg-type]
    raw = copy.deepcopy(DNA.raw)
    del raw["style"]["context"]["guild"]
    no_seals = parse_style_dna(raw, "no-seals.toml")
    with pytest.raises(StyleDNAError, match="maps no context field to a seal"):
        no_seals.validate(replace(base, seal="0123abcd"))


def test_an_orchestrator_cannot_choose_the_seal() -> None:
    base = choose(WALLETS["gamer"], {}).params
    params, clamps = clamp_params(base.to_dict() | {"seal": "0123abcd"}, DNA, base)
    assert params == base
    assert [clamp.to_dict() for clamp in clamps] == [
        {"field": "seal", "proposed": "'0123abcd'", "applied": None, "reason": "set by app context only"}
    ]


def _schema_values(name: str) -> st.SearchStrategy[Any]:
    spec = SCHEMA.fields[name]
    if spec.type == "enum":
        return st.sampled_from(spec.values)
    if spec.type == "integer":
        return st.integers(int(spec.minimum or 0), int(spec.maximum or 0))
    if spec.type == "list":
        return st.lists(st.text(max_size=spec.max_length), max_size=spec.max_items)
    return st.text(max_size=spec.max_length)


contexts = st.fixed_dictionaries({}, optional={name: _schema_values(name) for name in SCHEMA.fields})
in_bounds = st.builds(
    StyleParams,
    palette=st.sampled_from(DNA.choices("palette")),
    medium=st.sampled_from(DNA.choices("medium")),
    motif=st.sampled_from(DNA.choices("motif")),
    mood=st.sampled_from(DNA.choices("mood")),
    **{name: st.integers(DNA.ranges[name].low, DNA.ranges[name].high) for name in NUMERIC_FIELDS},
)


@settings(max_examples=300, deadline=None)
@given(params=in_bounds, context=contexts)
def test_any_accepted_context_keeps_any_params_inside_the_dna_and_moves_only_mapped_fields(
    params: StyleParams, context: dict[str, Any]
) -> None:
    try:
        accepted = SCHEMA.validate(context)
    except ContextError:
        return
    moved, record = apply_context_style(params, accepted, DNA)
    DNA.validate(moved)
    assert (moved.palette, moved.medium, moved.mood) == (params.palette, params.medium, params.mood)
    assert (moved.symmetry, moved.grain, moved.hue_shift) == (params.symmetry, params.grain, params.hue_shift)
    if record is None:
        assert moved == params
    else:
        assert set(record["changed"]) == {
            name for name in ("complexity", "energy", "motif", "seal") if getattr(moved, name) != getattr(params, name)
        } | {name for name, change in record["changed"].items() if "proposed" in change}


# ---- mappings that stop the collection from loading ----


def _with(style_context: Any, **extra_fields: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(DNA.raw)
    raw["style"]["context"] = style_context
    raw["context"]["fields"].update(extra_fields)
    return raw


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "enum", "values": list(values)}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_with("loud"), r"style.context must be a table"),
        (_with({"mana": {"energy": {"every": 1, "add": 1, "max": 1}}}), "'mana' is not a declared context field"),
        (_with({"level": {"sparkle": {"every": 1, "add": 1, "max": 1}}}), "'sparkle' is not a style field"),
        (_with({"level": {}}), r"style.context.level must be a table mapping style fields"),
        (_with({"class": {"motif": {"mage": "spirograph"}}}), "'spirograph' is not one of the DNA's motif choices"),
        (_with({"class": {"motif": {"necromancer": "flow"}}}), "'necromancer' is not a value of the field"),
        (_with({"class": {"energy": {"mage": "lots"}}}), r"class.energy.mage must be an integer offset"),
        (_with({"class": {"motif": []}}), "must be a table of enum value = target"),
        (_with({"level": {"palette": {"every": 1, "add": 1, "max": 1}}}), "moves range fields only"),
        (_with({"level": {"complexity": 1}}), r"must be \{ every = N, add = K, max = M \}"),
        (_with({"level": {"complexity": {"every": 1, "add": 1}}}), r"must be \{ every = N, add = K, max = M \}"),
        (_with({"level": {"complexity": {"every": 0, "add": 1, "max": 1}}}), "every must be a positive number"),
        (_with({"level": {"complexity": {"every": 1, "add": 0, "max": 1}}}), "add must be a non-zero integer"),
        (_with({"level": {"complexity": {"every": 1, "add": 1.5, "max": 1}}}), "add must be a non-zero integer"),
        (_with({"level": {"complexity": {"every": 1, "add": 1, "max": 0}}}), "max must be a positive integer"),
        (_with({"level": {"complexity": {"every": 1, "add": 1, "max": True}}}), "max must be a positive integer"),
        (_with({"guild": {"motif": {"owls": "flow"}}}), "a string context field can only draw a seal"),
        (_with({"level": {"seal": True}}), "only a string context field can draw a seal"),
        (_with({"guild": {"seal": "yes"}}), r"style.context.guild.seal must be true"),
        (
            _with({"class": {"motif": {"mage": "flow"}}, "role": {"motif": {"tank": "grid"}}}, role=_enum("tank")),
            "motif is already set by context field 'class'",
        ),
        (_with({"guild": {"seal": True}, "clan": {"seal": True}}, clan={"type": "string"}), "seal is already set"),
    ],
)
def test_a_bad_mapping_stops_the_collection_from_loading(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ContextStyleError, match=message) as caught:
        parse_style_dna(raw, "bad.toml")
    assert isinstance(caught.value, StyleDNAError)
    assert "bad.toml: style.context" in str(caught.value)


def test_a_mapping_needs_a_declared_context_schema() -> None:
    raw = copy.deepcopy(DNA.raw)
    del raw["context"]
    with pytest.raises(ContextStyleError, match=r"no \[context.fields\]"):
        parse_style_dna(raw, "open.toml")
    del raw["style"]["context"]
    assert parse_style_dna(raw, "open.toml").context_style.mappings == ()


def test_boolean_and_number_fields_map_too() -> None:
    raw = _with(
        {
            "veteran": {"energy": {"true": 20, "false": -5}, "mood": {"true": "austere"}},
            "ratio": {"grain": {"every": 0.25, "add": -10, "max": 30}},
        },
        veteran={"type": "boolean"},
        ratio={"type": "number", "min": 0, "max": 10},
    )
    dna = parse_style_dna(raw, "bool.toml")
    base = StyleParams("dawn", "ink", "flow", "serene", 5, 50, 50, 50, 0)
    assert apply_context_style(base, {"veteran": True}, dna)[0] == replace(base, energy=70, mood="austere")
    assert apply_context_style(base, {"veteran": False}, dna)[0] == replace(base, energy=45)
    assert apply_context_style(base, {"ratio": 0.6}, dna)[0] == replace(base, grain=30)  # floor(2.4) * -10
    assert apply_context_style(base, {"ratio": 9.0}, dna)[0] == replace(base, grain=20)  # at most -30
