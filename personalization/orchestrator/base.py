"""The orchestrator protocol and its result: what every algorithm in this folder implements."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from personalization.context_apply import apply_context_style
from personalization.profile import WalletProfile
from personalization.style import StyleDNA, StyleParams
from personalization.words import TokenWords, template_words


@dataclass(frozen=True)
class Orchestration:
    """The params chosen and how they were chosen (goes into provenance)."""

    params: StyleParams
    orchestrator: str
    persona: str
    provenance: dict[str, Any] = field(default_factory=dict)
    # The token's name and description. None in records saved before words existed: their
    # metadata keeps the old "{collection} · 0x…abcd #n" name and the collection's description.
    words: TokenWords | None = None


class Orchestrator(Protocol):
    name: str

    async def choose(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration: ...


def with_app_context(orchestration: Orchestration, profile: WalletProfile, dna: StyleDNA) -> Orchestration:
    """The orchestrator's choice moved by the collection's `[style.context]` rules, still inside the DNA.

    Every orchestrator's `choose` ends here, once, so the rule-based and the LLM paths honour
    the same rules; what moved what goes into provenance as `context_style`. A context that
    moves nothing leaves the orchestration (provenance included) exactly as it was.
    """
    params, record = apply_context_style(orchestration.params, profile.context, dna)
    if record is None:
        return orchestration
    words = orchestration.words
    if words is not None and words.source == "template":  # template words name the styled choices
        words = template_words(params.to_dict(), orchestration.persona, dna.words)
    provenance = {**orchestration.provenance, "context_style": record}
    return replace(orchestration, params=params, provenance=provenance, words=words)
