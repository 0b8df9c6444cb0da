"""The orchestrator protocol and its result: what every algorithm in this folder implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from personalization.profile import WalletProfile
from personalization.style import StyleDNA, StyleParams


@dataclass(frozen=True)
class Orchestration:
    """The params chosen and how they were chosen (goes into provenance)."""

    params: StyleParams
    orchestrator: str
    persona: str
    provenance: dict[str, Any] = field(default_factory=dict)


class Orchestrator(Protocol):
    name: str

    async def choose(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration: ...
