"""Rarity caps applied to an orchestrator's answer: its ranking per choice field, and the reserved values recorded.

The rule and the next-best are described in personalization/caps.py; jobs/style_caps.py reserves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from personalization.caps import Rankings, StyleCaps
from personalization.orchestrator.base import Orchestration
from personalization.style import StyleParams


def rank(params: StyleParams, baseline: Mapping[str, Sequence[str]]) -> Rankings:
    """Per field of `baseline`: the chosen value first, then the baseline's order without it."""
    rankings: Rankings = {}
    for name, order in baseline.items():
        chosen = getattr(params, name)
        rankings[name] = (chosen, *(value for value in order if value != chosen))
    return rankings


def with_caps(
    orchestration: Orchestration, rankings: Mapping[str, Sequence[str]], got: Mapping[str, str], caps: StyleCaps
) -> Orchestration:
    """The orchestration with the reserved values; what a cap moved is recorded in provenance."""
    moved: dict[str, str] = {}
    record: list[dict[str, Any]] = []
    for name, ranking in rankings.items():
        wanted, taken = ranking[0], got.get(name, ranking[0])
        if taken == wanted:
            continue
        moved[name] = taken
        cap = caps.cap_of(name, wanted)
        record.append({"field": name, "wanted": wanted, "got": taken, "cap": cap.describe() if cap else {}})
    if not moved:
        return orchestration
    return replace(
        orchestration,
        params=StyleParams.from_dict({**orchestration.params.to_dict(), **moved}),
        provenance={**orchestration.provenance, "caps": record},
    )
