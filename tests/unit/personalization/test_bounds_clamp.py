"""clamp_params: anything proposed → params inside the DNA; in-bounds kept, numbers clamped, each change recorded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.bounds import clamp_params
from personalization.style import CHOICE_FIELDS, NUMERIC_FIELDS, StyleParams, load_style_dna

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
FALLBACK = StyleParams.from_dict(
    {name: DNA.choices(name)[-1] for name in CHOICE_FIELDS} | {n: r.high for n, r in DNA.ranges.items()}
)

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.sampled_from(["5", " 7 ", "-1e3", "inf", "NaN", "DAWN", "Neon"]),
)
in_bounds = st.fixed_dictionaries(
    {name: st.sampled_from(DNA.choices(name)) for name in CHOICE_FIELDS}
    | {name: st.integers(DNA.ranges[name].low, DNA.ranges[name].high) for name in NUMERIC_FIELDS}
)


@settings(max_examples=300, deadline=None)
@given(proposed=st.dictionaries(st.sampled_from([*CHOICE_FIELDS, *NUMERIC_FIELDS, "extra"]), anything))
def test_anything_lands_inside_the_bounds(proposed: dict[str, Any]) -> None:
    params, clamps = clamp_params(proposed, DNA, FALLBACK)
    DNA.validate(params)
    changed = {clamp.field for clamp in clamps}
    for name in (*CHOICE_FIELDS, *NUMERIC_FIELDS):
        if getattr(params, name) != proposed.get(name) or type(proposed.get(name)) is not type(getattr(params, name)):
            assert name in changed, name


@settings(max_examples=200, deadline=None)
@given(proposed=in_bounds)
def test_in_bounds_values_are_kept_verbatim(proposed: dict[str, Any]) -> None:
    params, clamps = clamp_params(proposed, DNA, FALLBACK)
    assert params.to_dict() == proposed
    assert clamps == []


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NUMERIC_FIELDS), value=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_numbers_go_to_the_nearest_bound_not_the_fallback(name: str, value: float) -> None:
    params, _ = clamp_params({name: value}, DNA, FALLBACK)
    bounds = DNA.ranges[name]
    expected = min(bounds.high, max(bounds.low, round(value)))
    assert getattr(params, name) == expected


def test_unusable_values_take_the_fallback_and_say_why() -> None:
    params, clamps = clamp_params({"palette": "plaid", "energy": math.nan, "grain": True}, DNA, FALLBACK)
    assert params.palette == FALLBACK.palette
    assert params.energy == FALLBACK.energy
    assert params.grain == FALLBACK.grain
    reasons = {c.field: c.reason for c in clamps}
    assert reasons["palette"] == "not an allowed choice"
    assert reasons["energy"] == reasons["grain"] == "not a number"


def test_not_a_dict_is_all_fallback() -> None:
    params, clamps = clamp_params(["dawn"], DNA, FALLBACK)
    assert params == FALLBACK
    assert len(clamps) == len(CHOICE_FIELDS) + len(NUMERIC_FIELDS)
