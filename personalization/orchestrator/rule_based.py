"""The deterministic rule-based orchestrator: the offline default and the LLM's fallback.

Rubric (also in the README): a wallet gets a persona by the first rule that fits,
and each persona prefers a palette, medium, motif and mood; numbers come from
activity. Only address-free features are read, so identical histories give
identical params (the seed, not the style, makes two such tokens differ).

| persona    | rule                                  | palette | medium     | motif         | mood       |
|------------|---------------------------------------|---------|------------|---------------|------------|
| builder    | deployed >= 1 contract                | circuit | blueprint  | grid          | austere    |
| whale      | balance >= 1000 ETH                   | bullion | oil        | rings         | opulent    |
| gamer      | most activity on gaming contracts     | arcade  | neon       | shards        | playful    |
| trader     | most activity on DeFi contracts       | ledger  | risograph  | flow          | energetic  |
| collector  | most on art, or holds >= 5 NFTs       | gallery | watercolor | constellation | mysterious |
| newcomer   | <= 3 events in total                  | dawn    | ink        | terrain       | serene     |
| explorer   | anything else                         | dawn    | watercolor | flow          | playful    |

complexity ← log10(1 + events) (1000 events fill the range; events = token transfers + contract
interactions + transactions sent);
energy ← log10(1 + nonce + interactions) / 2.5; symmetry ← share of the logged activity (transfers
and interactions) on the top contract; grain ← log10(1 + blocks between the first and last
activity) / 7 (ten million blocks, about four years of 12 s blocks, fill the range; the chain's
height never enters); hue_shift ← share of transfers that came in (all in → +high, all out → low).

App context does not enter these rules: the collection's `[style.context]` rules move the
result afterwards (orchestrator/base.py `with_app_context`, shared with the LLM orchestrator).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

from personalization.bounds import clamp_params
from personalization.orchestrator.base import Orchestration, with_app_context
from personalization.profile import WalletProfile
from personalization.style import CHOICE_FIELDS, StyleDNA, StyleParams, canonical_json
from personalization.words import template_words

# log10 of the active span (in blocks) that fills the grain range: 10,000,000 blocks.
GRAIN_FULL_SPAN_DECADES = 7.0

PERSONAS: dict[str, dict[str, str]] = {
    "builder": {"palette": "circuit", "medium": "blueprint", "motif": "grid", "mood": "austere"},
    "whale": {"palette": "bullion", "medium": "oil", "motif": "rings", "mood": "opulent"},
    "gamer": {"palette": "arcade", "medium": "neon", "motif": "shards", "mood": "playful"},
    "trader": {"palette": "ledger", "medium": "risograph", "motif": "flow", "mood": "energetic"},
    "collector": {"palette": "gallery", "medium": "watercolor", "motif": "constellation", "mood": "mysterious"},
    "newcomer": {"palette": "dawn", "medium": "ink", "motif": "terrain", "mood": "serene"},
    "explorer": {"palette": "dawn", "medium": "watercolor", "motif": "flow", "mood": "playful"},
}

WHALE_ETH = 1000.0
COLLECTOR_NFTS = 5
NEWCOMER_EVENTS = 3


def persona_of(profile: WalletProfile) -> str:
    """The first rubric rule that fits this wallet."""
    if profile.contracts_deployed >= 1:
        return "builder"
    if profile.balance_eth >= WHALE_ETH:
        return "whale"
    dominant = profile.dominant_label
    if dominant == "gaming":
        return "gamer"
    if dominant == "defi":
        return "trader"
    if dominant == "art" or profile.nfts_held >= COLLECTOR_NFTS:
        return "collector"
    if profile.total_events <= NEWCOMER_EVENTS:
        return "newcomer"
    return "explorer"


def _scale(fraction: float, low: int, high: int) -> int:
    fraction = min(1.0, max(0.0, fraction))
    return low + round(fraction * (high - low))


def ranked_choices(profile: WalletProfile, dna: StyleDNA, persona: str | None = None) -> dict[str, tuple[str, ...]]:
    """Per choice field, every value the DNA allows, best first: the next-best when a rarity cap
    (personalization/caps.py) refuses the first.

    First the persona's preference (where the DNA has it; else a value picked by the features'
    digest, the choice this orchestrator always made), then the rest in an order hashed from the
    wallet's features and the value: stable for a wallet, different between wallets, so a capped
    trait's overflow spreads over the other values instead of piling onto one.
    """
    persona = persona or persona_of(profile)
    # The context is blanked (as a context-free profile has it), so that context reaches the
    # style only through the collection's declared rules, never by shifting this digest.
    feature_digest = hashlib.sha256(canonical_json({**profile.features(), "context": {}})).digest()
    rankings: dict[str, tuple[str, ...]] = {}
    for index, name in enumerate(CHOICE_FIELDS):
        preferred = PERSONAS[persona][name]
        allowed = dna.choices(name)
        # A collection with other names still gets a stable, feature-driven choice.
        first = preferred if preferred in allowed else allowed[feature_digest[index] % len(allowed)]
        rest = [value for value in allowed if value != first]
        rankings[name] = (first, *sorted(rest, key=_hashed(feature_digest, name)))
    return rankings


def _hashed(feature_digest: bytes, name: str) -> Callable[[str], bytes]:
    """The sort key of a field's values for one wallet: a digest of its features, the field and the value."""
    return lambda value: hashlib.sha256(feature_digest + f"{name}={value}".encode()).digest()


def rule_based_params(profile: WalletProfile, dna: StyleDNA) -> tuple[StyleParams, str]:
    """The wallet's params before app context: the LLM's baseline and fallback too."""
    persona = persona_of(profile)
    choices: dict[str, Any] = {name: ranking[0] for name, ranking in ranked_choices(profile, dna, persona).items()}

    events = profile.total_events
    ranges = dna.ranges
    complexity = _scale(math.log10(1 + events) / 3, ranges["complexity"].low, ranges["complexity"].high)
    energy_fraction = math.log10(1 + profile.tx_count + profile.interactions) / 2.5
    top = profile.top_contracts[0][1] if profile.top_contracts else 0
    symmetry_fraction = top / profile.log_events if profile.log_events else 0.5
    span = 0
    if profile.first_active_block is not None and profile.last_active_block is not None:
        span = profile.last_active_block - profile.first_active_block
    # The wallet's own active span, never the chain's height: an idle wallet keeps its grain forever.
    grain_fraction = math.log10(1 + span) / GRAIN_FULL_SPAN_DECADES
    moved = profile.transfers_in + profile.transfers_out
    inbound_fraction = profile.transfers_in / moved if moved else 0.5
    proposed = {
        **choices,
        "complexity": complexity,
        "energy": _scale(energy_fraction, ranges["energy"].low, ranges["energy"].high),
        "symmetry": _scale(symmetry_fraction, ranges["symmetry"].low, ranges["symmetry"].high),
        "grain": _scale(grain_fraction, ranges["grain"].low, ranges["grain"].high),
        "hue_shift": _scale(inbound_fraction, ranges["hue_shift"].low, ranges["hue_shift"].high),
    }
    fallback = StyleParams.from_dict(
        {name: dna.choices(name)[0] for name in CHOICE_FIELDS} | {name: b.low for name, b in ranges.items()}
    )
    params, _ = clamp_params(proposed, dna, fallback)
    return params, persona


class RuleBasedOrchestrator:
    """Deterministic, offline, instant."""

    name = "rule-based"
    version = "1"

    async def choose(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration:
        params, persona = rule_based_params(profile, dna)
        chosen = Orchestration(
            params=params,
            orchestrator=self.name,
            persona=persona,
            provenance={"orchestrator": self.name, "version": self.version, "persona": persona},
            # The collection's templates filled from the choices: deterministic, like the params.
            words=template_words(params.to_dict(), persona, dna.words),
        )
        return with_app_context(chosen, profile, dna)
