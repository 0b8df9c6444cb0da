"""Validate and clamp whatever an orchestrator proposes into the style DNA's bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from personalization.context_style import SEAL_FIELD
from personalization.style import CHOICE_FIELDS, NUMERIC_FIELDS, StyleDNA, StyleParams


@dataclass(frozen=True)
class Clamp:
    """One correction made to a proposed value, kept for provenance."""

    field: str
    proposed: Any
    applied: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "proposed": repr(self.proposed)[:80],
            "applied": self.applied,
            "reason": self.reason,
        }


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def clamp_params(proposed: Any, dna: StyleDNA, fallback: StyleParams) -> tuple[StyleParams, list[Clamp]]:
    """Keep in-bounds values verbatim; clamp numbers to the range; replace unknown choices.

    A field that is missing or unusable takes the fallback's value; every change is recorded.
    The seal is not an orchestrator's to choose (only app context sets it, after this): it is
    always the fallback's, and a proposal naming one is recorded as overridden.
    """
    source = proposed if isinstance(proposed, dict) else {}
    values: dict[str, Any] = {}
    clamps: list[Clamp] = []
    for name in CHOICE_FIELDS:
        value = source.get(name)
        allowed = dna.choices(name)
        if isinstance(value, str) and value in allowed:
            values[name] = value
            continue
        matched = None
        if isinstance(value, str):
            folded = value.strip().lower()
            matched = next((c for c in allowed if c.lower() == folded), None)
        values[name] = matched or getattr(fallback, name)
        clamps.append(Clamp(name, value, values[name], "case-folded" if matched else "not an allowed choice"))
    for name in NUMERIC_FIELDS:
        value = source.get(name)
        bounds = dna.ranges[name]
        number = _as_number(value)
        if number is None:
            values[name] = getattr(fallback, name)
            clamps.append(Clamp(name, value, values[name], "not a number"))
            continue
        rounded = round(number)
        clamped = bounds.clamp(rounded)
        values[name] = clamped
        if clamped != rounded:
            clamps.append(Clamp(name, value, clamped, f"outside [{bounds.low}, {bounds.high}]"))
        elif not (isinstance(value, int) and not isinstance(value, bool)):
            clamps.append(Clamp(name, value, clamped, "rounded to an integer"))
    if SEAL_FIELD in source and source[SEAL_FIELD] != fallback.seal:
        kept = fallback.seal if isinstance(fallback.seal, str) else None
        clamps.append(Clamp(SEAL_FIELD, source[SEAL_FIELD], kept, "set by app context only"))
    params = StyleParams(**values, seal=fallback.seal)
    dna.validate(params)
    return params, clamps
