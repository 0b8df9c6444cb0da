"""The rule-based orchestrator follows its written rubric for the six demo archetypes (and the rest)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path

import pytest

from personalization.orchestrator import build_orchestrator
from personalization.orchestrator.rule_based import PERSONAS, RuleBasedOrchestrator, persona_of, rule_based_params
from personalization.profile import WalletProfile
from personalization.style import CHOICE_FIELDS, load_style_dna
from tests.support.archetypes import ARCHETYPES, BLANK

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")


@pytest.mark.parametrize("archetype", sorted(ARCHETYPES))
def test_each_archetype_gets_its_persona_and_the_persona_s_choices(archetype: str) -> None:
    profile = ARCHETYPES[archetype]
    expected = archetype  # the demo's "DeFi trader" is the rubric's "trader"
    assert persona_of(profile) == expected
    params, persona = rule_based_params(profile, DNA)
    assert persona == expected
    for name in CHOICE_FIELDS:
        assert getattr(params, name) == PERSONAS[expected][name]
    DNA.validate(params)


def test_six_archetypes_give_six_different_styles() -> None:
    styles = {rule_based_params(p, DNA)[0] for p in ARCHETYPES.values()}
    assert len(styles) == 6


def test_rule_order_decides_between_overlapping_personas() -> None:
    # Deploying beats wealth, wealth beats labels, labels beat holdings, holdings beat "few events".
    whale_builder = replace(ARCHETYPES["whale"], contracts_deployed=1)
    assert persona_of(whale_builder) == "builder"
    rich_gamer = replace(ARCHETYPES["gamer"], balance_eth=1000.0)
    assert persona_of(rich_gamer) == "whale"
    gamer_with_art = replace(ARCHETYPES["gamer"], nfts_held=50)
    assert persona_of(gamer_with_art) == "gamer"
    unlabelled_holder = replace(BLANK, erc721_transfers=6, transfers_in=6, nfts_held=5)
    assert persona_of(unlabelled_holder) == "collector"
    busy_unlabelled = replace(BLANK, erc20_transfers=10, transfers_in=10)
    assert persona_of(busy_unlabelled) == "explorer"
    assert persona_of(BLANK) == "newcomer"


def test_numbers_follow_activity_as_the_rubric_says() -> None:
    trader, newcomer = (
        rule_based_params(ARCHETYPES["trader"], DNA)[0],
        rule_based_params(ARCHETYPES["newcomer"], DNA)[0],
    )
    # complexity ← log10(1 + events); energy ← log10(1 + nonce + interactions)
    assert trader.complexity > newcomer.complexity
    assert trader.energy > newcomer.energy
    # 1000 events fill the complexity range.
    busy = replace(ARCHETYPES["trader"], erc20_transfers=2000)
    assert rule_based_params(busy, DNA)[0].complexity == DNA.ranges["complexity"].high
    # hue_shift: all in → high, all out → low, none → the middle.
    all_in = replace(BLANK, erc20_transfers=10, transfers_in=10)
    all_out = replace(BLANK, erc20_transfers=10, transfers_out=10)
    assert rule_based_params(all_in, DNA)[0].hue_shift == DNA.ranges["hue_shift"].high
    assert rule_based_params(all_out, DNA)[0].hue_shift == DNA.ranges["hue_shift"].low
    # symmetry ← share of activity on the top contract: a single-contract wallet is fully folded.
    collector = rule_based_params(ARCHETYPES["collector"], DNA)[0]
    assert collector.symmetry == DNA.ranges["symmetry"].high
    # grain ← log10(1 + the wallet's own active span) / 7: the chain's height never enters.
    gamer = rule_based_params(ARCHETYPES["gamer"], DNA)[0]
    assert gamer.grain == round(math.log10(1 + 800) / 7 * 100)
    ten_million = replace(ARCHETYPES["gamer"], first_active_block=0, last_active_block=10_000_000)
    assert rule_based_params(ten_million, DNA)[0].grain == DNA.ranges["grain"].high


def test_an_unchanged_history_keeps_its_style_as_the_chain_grows() -> None:
    # The same wallet read at three heights (the demo issue's 190, 382, 574): the same params.
    for archetype in ARCHETYPES.values():
        styles = {rule_based_params(replace(archetype, block_number=height), DNA) for height in (190, 382, 574, 10**8)}
        assert len(styles) == 1, archetype
        # Once the chain has grown past its recent window, an idle wallet's recent events fall to 0:
        # what the style reads (and an LLM is shown) stays the same.
        idle = replace(archetype, block_number=10**8, recent_events=0)
        assert idle.features() == replace(archetype, recent_events=archetype.recent_events + 7).features()


def test_plain_transactions_are_activity() -> None:
    # 65 sent transactions and no logs (plain ETH transfers): not a newcomer, not complexity 1.
    sender = replace(BLANK, tx_count=65)
    assert sender.total_events == 65
    assert persona_of(sender) == "explorer"
    params = rule_based_params(sender, DNA)[0]
    expected = DNA.ranges["complexity"].low + round(
        math.log10(66) / 3 * (DNA.ranges["complexity"].high - DNA.ranges["complexity"].low)
    )
    assert params.complexity == expected > rule_based_params(BLANK, DNA)[0].complexity


def test_app_context_reaches_the_style_only_through_the_collection_s_rules() -> None:
    plain = replace(ARCHETYPES["gamer"], context={})
    one = replace(ARCHETYPES["gamer"], context={"achievements": ["first-blood"]})
    # The rubric itself never reads the context ...
    assert rule_based_params(one, DNA) == rule_based_params(plain, DNA)
    # ... the default collection's [style.context.achievements] rule does: +1 per achievement.
    before = asyncio.run(RuleBasedOrchestrator().choose(plain, DNA))
    after = asyncio.run(RuleBasedOrchestrator().choose(one, DNA))
    assert after.params.complexity == before.params.complexity + 1
    assert after.provenance["context_style"]["changed"] == {
        "complexity": {"from": before.params.complexity, "to": before.params.complexity + 1}
    }
    assert "context_style" not in before.provenance


def test_identical_features_give_identical_params_whatever_the_address() -> None:
    other = replace(ARCHETYPES["collector"], address="0x" + "99" * 20, block_number=1000)
    assert rule_based_params(other, DNA) == rule_based_params(ARCHETYPES["collector"], DNA)


def test_factory_without_a_url_is_rule_based() -> None:
    orchestrator = build_orchestrator(None, "unused")
    assert isinstance(orchestrator, RuleBasedOrchestrator)
    result = asyncio.run(orchestrator.choose(ARCHETYPES["gamer"], DNA))
    assert result.persona == "gamer"
    assert result.provenance["orchestrator"] == "rule-based"


def test_profiles_saved_before_the_new_fields_still_load() -> None:
    old = ARCHETYPES["trader"].to_dict()
    for name in ("items_held", "first_activity_block", "recent_events", "flows", "top_collections", "top_tokens"):
        old.pop(name)
    assert WalletProfile.from_dict(old) == ARCHETYPES["trader"]
    assert WalletProfile.from_dict(ARCHETYPES["trader"].to_dict()) == ARCHETYPES["trader"]
