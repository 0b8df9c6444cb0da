"""Rarity caps across a collection (`[style.caps]`): how often a choice may appear, and the next-best when it may not.

A collection keeps a trait rare by capping a value of a choice field (palette, medium, motif,
mood), one table per field:

    [style.caps.palette]
    bullion = { share = 0.02 }            # at most 2 % of the collection's tokens
    [style.caps.motif]
    rings = { max = 5 }                   # at most five tokens, ever
    shards = { share = 0.1, max = 40 }    # both: the smaller limit holds

The limit of a cap when a token is styled, with `tokens` the collection's tokens counting this one:

    limit(tokens) = min(max, floor(share_ppm × max(tokens, min_total) / 1 000 000))

`share_ppm` is the share in parts per million (integer arithmetic: 0.29 × 100 is 29, not
28.999…); `min_total` (default ⌈1 / share⌉) is the smallest count the share is taken of, so the
first tokens are not all refused: with `share = 0.02` one token of the first 50 may have it, two
of the first 100, and from then on never more than 2 %. A token may take a value while fewer than
`limit(tokens)` live tokens have it. "Live tokens" are the collection's jobs past the style stage
and not failed or expired (jobs/style_caps.py counts them atomically in Redis, per collection,
from the day the collection first has caps).

Loading refuses a cap on a field that is not a choice field, on a value the DNA lacks, a share
outside (0, 1] (or below one per million), a negative or non-integer `max`, a `min_total` below 1
or without a share, unknown keys, and a field whose every value is capped (a token must always
have a choice left).

The next-best choice (personalization/caps_apply.py). Every orchestrator's answer becomes a
ranking per field (`rank`): the orchestrator's own choice first (after app context), then the
rule-based ranking of the wallet (personalization/orchestrator/rule_based.py `ranked_choices`:
the persona's preference, then the DNA's other values in an order hashed from the wallet's
features), so the LLM needs no ranking of its own. The reservation takes, per field, the first
value under its cap; what was capped goes into provenance as `caps: [{field, wanted, got, cap}]`
(absent when nothing was).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from personalization.errors import StyleDNAError

PPM = 1_000_000
_KEYS = frozenset({"max", "share", "min_total"})

# Per choice field, every value to try, best first.
Rankings = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Cap:
    """One value's cap: an absolute count, a share of the collection's tokens, or both."""

    max: int | None = None
    share_ppm: int | None = None
    min_total: int = 1

    def limit(self, tokens: int) -> int:
        """How many live tokens may have the value when the collection has `tokens` (counting the new one)."""
        limits = [] if self.max is None else [self.max]
        if self.share_ppm is not None:
            limits.append(self.share_ppm * max(tokens, self.min_total) // PPM)
        return min(limits)

    def describe(self) -> dict[str, Any]:
        """The cap as the collection states it (what provenance records)."""
        described: dict[str, Any] = {}
        if self.max is not None:
            described["max"] = self.max
        if self.share_ppm is not None:
            described["share"] = self.share_ppm / PPM
            described["min_total"] = self.min_total
        return described

    def script_form(self) -> dict[str, int]:
        """The cap as jobs/scripts/style_caps_choose.lua reads it."""
        form: dict[str, int] = {}
        if self.max is not None:
            form["max"] = self.max
        if self.share_ppm is not None:
            form["share_ppm"] = self.share_ppm
            form["min_total"] = self.min_total
        return form


@dataclass(frozen=True)
class StyleCaps:
    """A collection's caps by choice field and value; empty (falsy) when it has none."""

    by_field: Mapping[str, Mapping[str, Cap]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.by_field.values())

    def cap_of(self, name: str, value: str) -> Cap | None:
        return self.by_field.get(name, {}).get(value)

    def script_form(self) -> dict[str, dict[str, dict[str, int]]]:
        return {name: {value: cap.script_form() for value, cap in caps.items()} for name, caps in self.by_field.items()}


def _cap(raw: Any, where: str) -> Cap:
    if not isinstance(raw, dict):
        raise StyleDNAError(f"{where} must be a table such as {{ max = 5 }} or {{ share = 0.02 }}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise StyleDNAError(f"{where}: unknown keys {sorted(unknown)} (max, share, min_total)")
    if "max" not in raw and "share" not in raw:
        raise StyleDNAError(f"{where} needs max or share")
    most = raw.get("max")
    if most is not None and (not isinstance(most, int) or isinstance(most, bool) or most < 0):
        raise StyleDNAError(f"{where}.max must be an integer >= 0")
    share = raw.get("share")
    share_ppm = None
    if share is not None:
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share <= 1:
            raise StyleDNAError(f"{where}.share must be a number in (0, 1]")
        share_ppm = round(share * PPM)
        if share_ppm == 0:
            raise StyleDNAError(f"{where}.share is below one per million")
    if "min_total" in raw and share_ppm is None:
        raise StyleDNAError(f"{where}.min_total applies only with a share")
    min_total = raw.get("min_total", math.ceil(PPM / share_ppm) if share_ppm else 1)
    if not isinstance(min_total, int) or isinstance(min_total, bool) or min_total < 1:
        raise StyleDNAError(f"{where}.min_total must be an integer >= 1")
    return Cap(max=most, share_ppm=share_ppm, min_total=min_total)


def parse_style_caps(raw: Any, choices: Mapping[str, Sequence[str]], where: str) -> StyleCaps:
    """The file's `[style.caps]` checked against the DNA's choices (by field); errors name file and key."""
    if raw is None:
        return StyleCaps()
    if not isinstance(raw, dict):
        raise StyleDNAError(f"{where}: style.caps must be a table of choice fields")
    by_field: dict[str, dict[str, Cap]] = {}
    for name, values in raw.items():
        if name not in choices:
            raise StyleDNAError(f"{where}: style.caps.{name} is not a choice field ({', '.join(choices)})")
        if not isinstance(values, dict):
            raise StyleDNAError(f"{where}: style.caps.{name} must be a table of values")
        caps: dict[str, Cap] = {}
        for value, cap in values.items():
            if value not in choices[name]:
                raise StyleDNAError(f"{where}: style.caps.{name}.{value}: {value!r} is not one of the DNA's {name}s")
            caps[value] = _cap(cap, f"{where}: style.caps.{name}.{value}")
        if caps and len(caps) == len(choices[name]):
            raise StyleDNAError(f"{where}: style.caps.{name} caps every {name}; leave at least one uncapped")
        by_field[name] = caps
    return StyleCaps(by_field)
