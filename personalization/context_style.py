"""How app context moves the style: the collection's `[style.context.<field>]` rules, parsed and applied.

A collection maps each context field it declares (`[context.fields.<field>]`) to style
fields, with one rule form per kind of context field:

    [style.context.class]                 # enum (or boolean: keys "true" / "false")
    motif = { mage = "shards", warrior = "grid" }            # a choice field: set to that choice
    energy = { warrior = 20, mage = -10 }                    # a range field: moved by that offset
    [style.context.level]                 # integer / number
    complexity = { every = 25, add = 1, max = 2 }            # +add per `every`, at most ±max
    [style.context.achievements]          # list: the same, counting its items
    complexity = { every = 1, add = 1, max = 3 }
    [style.context.guild]                 # string
    seal = true                                              # a seal drawn from the string's hash

The rules run after the orchestrator's choice (rule-based or LLM alike, see
orchestrator/base.py): offsets to one range field add up and the sum is clamped into the
DNA's range; a choice field is set by at most one context field. A key that is absent, an
empty list or a blank string changes nothing, so an empty context renders like none.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from personalization.context import ContextSchema
from personalization.errors import StyleDNAError

# The seal is this many hex digits of sha256 over the normalised string: 32 bits of shape and colour.
SEAL_HEX_DIGITS = 8
SEAL_FIELD = "seal"
_SEAL = re.compile(rf"[0-9a-f]{{{SEAL_HEX_DIGITS}}}")
_STEP_KINDS = ("integer", "number", "list")
_VALUE_KINDS = ("enum", "boolean")


class ContextStyleError(StyleDNAError):
    """A collection's `[style.context]` table is malformed or names what the collection lacks."""


def seal_of(text: str) -> str:
    """The seal of a string (a guild's name): NFC, trimmed and case-folded, then sha256, first 8 hex digits."""
    name = unicodedata.normalize("NFC", text).strip().casefold()
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:SEAL_HEX_DIGITS]


def is_seal(value: Any) -> bool:
    return isinstance(value, str) and _SEAL.fullmatch(value) is not None


@dataclass(frozen=True)
class StepRule:
    """A number (or a list's length) moves a range field: floor(amount / every) * add, within ±max."""

    style: str
    every: float
    add: int
    max: int

    def offset(self, amount: float) -> int:
        steps = math.floor(amount / self.every)
        return max(-self.max, min(self.max, steps * self.add))


@dataclass(frozen=True)
class ValueRule:
    """An enum (or boolean) value sets a choice field, or moves a range field by an offset."""

    style: str
    by_value: tuple[tuple[str, str | int], ...]

    def target(self, key: str) -> str | int | None:
        return next((target for value, target in self.by_value if value == key), None)


@dataclass(frozen=True)
class SealRule:
    """A string becomes the seal drawn on the image (StyleParams.seal)."""

    style: str = SEAL_FIELD


Rule = StepRule | ValueRule | SealRule


@dataclass(frozen=True)
class FieldMapping:
    """The rules one context field drives, in file order."""

    field: str
    kind: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class ContextStyle:
    """A collection's context → style rules; empty when it declares none."""

    mappings: tuple[FieldMapping, ...] = ()

    @property
    def draws_seal(self) -> bool:
        return any(isinstance(rule, SealRule) for mapping in self.mappings for rule in mapping.rules)

    def fields(self) -> tuple[str, ...]:
        return tuple(mapping.field for mapping in self.mappings)


def parse_context_style(
    raw: Any,
    schema: ContextSchema,
    choices: dict[str, tuple[str, ...]],
    ranges: tuple[str, ...],
    where: str,
) -> ContextStyle:
    """Validate a collection's `style.context` table against its context schema and style fields."""
    if raw is None:
        return ContextStyle()
    spot = f"{where}: style.context"
    if not isinstance(raw, dict):
        raise ContextStyleError(f"{spot} must be a table")
    known = (*choices, *ranges, SEAL_FIELD)
    mappings: list[FieldMapping] = []
    set_by: dict[str, str] = {}
    for name, table in raw.items():
        here = f"{spot}.{name}"
        declared = schema.fields.get(name)
        if declared is None:
            fields = sorted(schema.fields) if not schema.open else "none: the collection has no [context.fields]"
            raise ContextStyleError(f"{here}: {name!r} is not a declared context field (declared: {fields})")
        if not isinstance(table, dict) or not table:
            raise ContextStyleError(f"{here} must be a table mapping style fields to rules")
        rules: list[Rule] = []
        for style, rule_raw in table.items():
            at = f"{here}.{style}"
            if style not in known:
                raise ContextStyleError(f"{at}: {style!r} is not a style field (one of {list(known)})")
            if style in choices or style == SEAL_FIELD:
                if style in set_by:
                    raise ContextStyleError(f"{at}: {style} is already set by context field {set_by[style]!r}")
                set_by[style] = name
            rules.append(_parse_rule(declared.type, declared.values, style, rule_raw, choices, at))
        mappings.append(FieldMapping(name, declared.type, tuple(rules)))
    return ContextStyle(tuple(mappings))


def _parse_rule(
    kind: str,
    enum_values: tuple[str, ...],
    style: str,
    raw: Any,
    choices: dict[str, tuple[str, ...]],
    at: str,
) -> Rule:
    if style == SEAL_FIELD:
        if kind != "string":
            raise ContextStyleError(f"{at}: only a string context field can draw a seal (this one is {kind})")
        if raw is not True:
            raise ContextStyleError(f"{at} must be true")
        return SealRule()
    if kind == "string":
        raise ContextStyleError(f"{at}: a string context field can only draw a seal (seal = true)")
    if kind in _STEP_KINDS:
        if style in choices:
            raise ContextStyleError(f"{at}: a {kind} context field moves range fields only, not the choice {style!r}")
        return _parse_step(style, raw, at)
    if kind not in _VALUE_KINDS:  # pragma: no cover - the schema parser admits no other kind
        raise ContextStyleError(f"{at}: a {kind} context field cannot be mapped")
    values = enum_values if kind == "enum" else ("true", "false")
    if not isinstance(raw, dict) or not raw:
        raise ContextStyleError(f"{at} must be a table of {kind} value = target")
    by_value: list[tuple[str, str | int]] = []
    for value, target in raw.items():
        if value not in values:
            raise ContextStyleError(f"{at}.{value}: {value!r} is not a value of the field (one of {list(values)})")
        if style in choices:
            if target not in choices[style]:
                raise ContextStyleError(f"{at}.{value}: {target!r} is not one of the DNA's {style} choices")
        elif isinstance(target, bool) or not isinstance(target, int):
            raise ContextStyleError(f"{at}.{value} must be an integer offset to {style}")
        by_value.append((value, target))
    return ValueRule(style, tuple(by_value))


def _parse_step(style: str, raw: Any, at: str) -> StepRule:
    if not isinstance(raw, dict) or set(raw) != {"every", "add", "max"}:
        raise ContextStyleError(f"{at} must be {{ every = N, add = K, max = M }}")
    every, add, cap = raw["every"], raw["add"], raw["max"]
    if isinstance(every, bool) or not isinstance(every, int | float) or not math.isfinite(every) or every <= 0:
        raise ContextStyleError(f"{at}.every must be a positive number")
    if isinstance(add, bool) or not isinstance(add, int) or add == 0:
        raise ContextStyleError(f"{at}.add must be a non-zero integer")
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ContextStyleError(f"{at}.max must be a positive integer")
    return StepRule(style, float(every), add, cap)
