"""Apply a collection's app-context rules (personalization/context_style.py) to chosen params.

Apart from the rules' parsing so that the style DNA (which holds the parsed rules) and this
step (which needs the DNA and its params) do not import each other.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from personalization.context import is_empty
from personalization.context_style import StepRule, ValueRule, seal_of
from personalization.style import StyleDNA, StyleParams


def _amount(kind: str, value: Any) -> float | None:
    if kind == "list":
        return float(len(value)) if isinstance(value, list) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _value_key(kind: str, value: Any) -> str | None:
    if kind == "boolean":
        return ("true" if value else "false") if isinstance(value, bool) else None
    return value if isinstance(value, str) else None


def apply_context_style(
    params: StyleParams, context: dict[str, Any], dna: StyleDNA
) -> tuple[StyleParams, dict[str, Any] | None]:
    """Params moved by the DNA's context rules, still inside its bounds, and what moved them.

    The record (None when no rule had an effect) lists each rule that acted
    (`{"field", "style", "set" | "add"}`) and each style field that changed (`from`, `to`,
    and `proposed` when the offsets' sum was clamped into the range). Context values never
    enter it: provenance is published with the token.
    """
    rules: list[dict[str, Any]] = []
    chosen: dict[str, str] = {}
    offsets: dict[str, int] = {}
    for mapping in dna.context_style.mappings:
        value = context.get(mapping.field)
        if value is None or is_empty(value):
            continue
        for rule in mapping.rules:
            if isinstance(rule, StepRule):
                amount = _amount(mapping.kind, value)
                offset = rule.offset(amount) if amount is not None else 0
                if offset:
                    offsets[rule.style] = offsets.get(rule.style, 0) + offset
                    rules.append({"field": mapping.field, "style": rule.style, "add": offset})
            elif isinstance(rule, ValueRule):
                key = _value_key(mapping.kind, value)
                target = rule.target(key) if key is not None else None
                if isinstance(target, str):
                    chosen[rule.style] = target
                    rules.append({"field": mapping.field, "style": rule.style, "set": target})
                elif target:
                    offsets[rule.style] = offsets.get(rule.style, 0) + target
                    rules.append({"field": mapping.field, "style": rule.style, "add": target})
            elif isinstance(value, str):
                chosen[rule.style] = seal_of(value)
                rules.append({"field": mapping.field, "style": rule.style, "set": chosen[rule.style]})
    if not rules:
        return params, None
    updates: dict[str, Any] = dict(chosen)
    changed: dict[str, dict[str, Any]] = {}
    for name, offset in offsets.items():
        before: int = getattr(params, name)
        proposed = before + offset
        updates[name] = dna.ranges[name].clamp(proposed)
        if updates[name] != before:
            changed[name] = {"from": before, "to": updates[name]}
        if updates[name] != proposed:
            changed.setdefault(name, {"from": before, "to": updates[name]})["proposed"] = proposed
    for name, choice in chosen.items():
        before_choice = getattr(params, name)
        if before_choice != choice:
            changed[name] = {"from": before_choice if isinstance(before_choice, str) else None, "to": choice}
    result = replace(params, **updates)
    dna.validate(result)
    return result, {"rules": rules, "changed": dict(sorted(changed.items()))}
