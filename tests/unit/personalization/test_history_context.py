"""App context: checked against the collection's `[context]` schema, size-bounded, merged into the profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.context import ContextError, ContextSchemaError, parse_context_schema
from personalization.errors import StyleDNAError
from personalization.history import WalletHistory
from personalization.profile import build_profile
from personalization.registry import ContractRegistry
from personalization.style import load_style_dna, parse_style_dna

ROOT = Path(__file__).resolve().parents[3]
DNA = load_style_dna(ROOT / "collections" / "default.toml")
SCHEMA = DNA.context_schema


def test_the_demo_gamer_context_fits_the_default_collection() -> None:
    context = {"achievements": ["first-blood", "dragon-slayer"], "hours": 500, "class": "mage"}
    assert SCHEMA.validate(context) == context
    assert SCHEMA.validate(None) == {}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"hours": -1}, "context.hours must be >= 0"),
        ({"hours": 10.5}, "context.hours must be of type integer"),
        ({"hours": True}, "context.hours must be of type integer"),
        ({"class": "necromancer"}, "context.class must be one of"),
        ({"achievements": "all"}, "context.achievements must be a list"),
        ({"achievements": [1]}, r"context.achievements\[\] must be of type string"),
        ({"achievements": ["x" * 49]}, "longer than 48"),
        ({"achievements": ["a"] * 65}, "at most 64"),
        ({"wallet_of_a_friend": "0x"}, "not in this collection's schema"),
        ({"guild": "g" * 2100}, "bytes; this collection accepts at most 2048"),
        (["not", "an", "object"], "must be a JSON object"),
        ({"hours": float("nan")}, "not plain JSON"),
    ],
)
def test_context_that_does_not_fit_is_refused_with_the_reason(context: Any, message: str) -> None:
    with pytest.raises(ContextError, match=message):
        SCHEMA.validate(context)


def test_a_collection_without_a_context_table_accepts_small_objects_only() -> None:
    schema = parse_context_schema(None, "x.toml")
    assert schema.validate({"anything": {"nested": [1, 2]}}) == {"anything": {"nested": [1, 2]}}
    with pytest.raises(ContextError, match="bytes"):
        schema.validate({"blob": "x" * 5000})
    with pytest.raises(ContextError, match="nests deeper"):
        schema.validate({"a": {"b": {"c": {"d": {"e": 1}}}}})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"fields": {"x": {"type": "date"}}}, r"context.fields.x.type must be one of"),
        ({"fields": {"x": {"type": "enum"}}}, "values must be a non-empty list"),
        ({"fields": {"x": {"type": "integer", "min": 5, "max": 1}}}, "min > max"),
        ({"fields": {"x": {"type": "list", "items": "object"}}}, "items must be one of"),
        ({"max_bytes": 0}, "max_bytes must be a positive integer"),
        ("nope", "'context' must be a table"),
    ],
)
def test_a_bad_context_table_stops_the_collection_from_loading(table: Any, message: str) -> None:
    with pytest.raises(ContextSchemaError, match=message):
        parse_context_schema(table, "bad.toml")
    raw = dict(DNA.raw) | {"context": table}
    with pytest.raises(StyleDNAError):
        parse_style_dna(raw, "bad.toml")


@settings(max_examples=200, deadline=None)
@given(
    context=st.dictionaries(
        st.sampled_from(["achievements", "hours", "class", "level", "guild", "other"]),
        st.one_of(st.integers(-5, 200_000), st.text(max_size=60), st.lists(st.text(max_size=50), max_size=70)),
        max_size=6,
    )
)
def test_validation_either_returns_the_context_less_its_empty_values_or_raises_context_error(
    context: dict[str, Any],
) -> None:
    try:
        accepted = SCHEMA.validate(context)
    except ContextError as exc:
        refused = exc
    else:
        blank = [key for key, value in context.items() if value == [] or (isinstance(value, str) and not value.strip())]
        assert accepted == {key: value for key, value in context.items() if key not in blank}
        return
    # A refusal names where (a key of this context, or the whole object) and which rule.
    assert refused.field == "context" or refused.field.removeprefix("context.") in context
    assert refused.rule


def test_validated_context_is_merged_into_the_profile() -> None:
    history = WalletHistory(
        chain_id=1, address="0x" + "aa" * 20, block_number=10, from_block=0, balance_wei=0, nonce=0, is_contract=False
    )
    context = SCHEMA.validate({"achievements": ["a"] * 10, "class": "rogue"})
    profile = build_profile(history, ContractRegistry(), context)
    assert profile.context == context
    assert profile.features()["context"] == context
