"""Demo seeding on real anvil: deterministic, fast, and read back as six different personas."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.contracts.build import PROJECT_ROOT
from devstack.anvil import AnvilProcess
from devstack.seed import ARCHETYPES, REGISTRY_LABELS, SeedError, SeedResult, describe, seed_demo
from personalization.history import fetch_history, history_rpc
from personalization.orchestrator.rule_based import persona_of, rule_based_params
from personalization.profile import WalletProfile, build_profile
from personalization.registry import ContractRegistry
from personalization.style import load_style_dna

SEEDING_BUDGET_S = 20.0


@dataclass(frozen=True)
class Seeded:
    anvil: AnvilProcess
    result: SeedResult
    registry_path: Path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    # Not the session anvil: seeding needs a chain nobody has transacted on.
    registry_path = tmp_path_factory.mktemp("seed") / "known_contracts.json"
    with AnvilProcess() as node:
        result = asyncio.run(seed_demo(node.url, registry_path=registry_path))
        print("\n" + describe(result))
        yield Seeded(node, result, registry_path)


async def _profiles(seeded: Seeded) -> dict[str, WalletProfile]:
    registry = ContractRegistry.load(seeded.registry_path)
    async with history_rpc(seeded.anvil.url) as rpc:
        histories = await asyncio.gather(
            *(fetch_history(rpc, seeded.result.wallets[archetype]) for archetype in ARCHETYPES)
        )
    return {
        archetype: build_profile(history, registry) for archetype, history in zip(ARCHETYPES, histories, strict=True)
    }


def _seed_fresh(seed: int) -> SeedResult:
    with AnvilProcess() as node:
        return asyncio.run(seed_demo(node.url, seed=seed))


def test_same_seed_same_chain_story_other_seed_other_wallets(seeded: Seeded) -> None:
    again = _seed_fresh(0)
    assert again.wallets == seeded.result.wallets
    assert again.contracts == seeded.result.contracts
    # Includes every balance to the wei: fees are fixed, so gas never depends on timing.
    assert again.expected == seeded.result.expected
    assert again.tx_count == seeded.result.tx_count

    other = _seed_fresh(1)
    assert set(other.wallets) == set(ARCHETYPES)
    assert set(other.wallets.values()).isdisjoint(seeded.result.wallets.values())
    # Shared sample contracts come from dev account 9 alone; the builder's own follow its wallet.
    for name in REGISTRY_LABELS:
        assert other.contracts[name] == seeded.result.contracts[name]
    assert other.contracts["BuilderToken"] != seeded.result.contracts["BuilderToken"]
    assert len(set(seeded.result.wallets.values())) == len(ARCHETYPES)


def test_second_seeding_of_the_same_chain_is_refused(seeded: Seeded) -> None:
    with pytest.raises(SeedError, match="fresh chain"):
        asyncio.run(seed_demo(seeded.anvil.url))


def test_registry_file_labels_the_sample_contracts(seeded: Seeded) -> None:
    entries = json.loads(seeded.registry_path.read_text())["contract"]
    labels = {entry["name"]: entry["label"] for entry in entries}
    assert labels == REGISTRY_LABELS
    assert {entry["chain_id"] for entry in entries} == {seeded.result.chain_id}
    registry = ContractRegistry.load(seeded.registry_path)
    assert registry.lookup(seeded.result.chain_id, seeded.result.contracts["GameItems"]).label == "gaming"
    # The newcomer's airdrop token must stay unlabelled, or one event would read as DeFi.
    assert registry.lookup(seeded.result.chain_id, seeded.result.contracts["WelcomeToken"]) is None


async def test_profiles_read_back_what_was_seeded(seeded: Seeded) -> None:
    profiles = await _profiles(seeded)
    for archetype in ARCHETYPES:
        profile, expected = profiles[archetype], seeded.result.expected[archetype]
        seen = {
            "erc20_transfers": profile.erc20_transfers,
            "erc721_transfers": profile.erc721_transfers,
            "erc1155_transfers": profile.erc1155_transfers,
            "transfers_in": profile.transfers_in,
            "transfers_out": profile.transfers_out,
            "interactions": profile.interactions,
            "nfts_held": profile.nfts_held,
            "deployments": profile.contracts_deployed,
            "tx_count": profile.tx_count,
            "labels": profile.labels,
        }
        assert seen == {key: expected[key] for key in seen}, archetype
        assert profile.balance_eth == round(expected["balance_wei"] / 10**18, 6), archetype
        assert persona_of(profile) == archetype, (archetype, profile.to_dict())


async def test_histories_are_large_and_match_the_rubric(seeded: Seeded) -> None:
    profiles = await _profiles(seeded)
    gamer, trader, collector = profiles["gamer"], profiles["trader"], profiles["collector"]
    newcomer, whale, builder = profiles["newcomer"], profiles["whale"], profiles["builder"]
    assert gamer.erc1155_transfers >= 50
    assert gamer.dominant_label == "gaming"
    assert gamer.tx_count >= 20
    assert seeded.result.expected["trader"]["swaps"] >= 24
    assert trader.dominant_label == "defi"
    assert trader.erc20_transfers >= 100
    assert collector.dominant_label == "art"
    assert collector.nfts_held >= 5
    assert collector.erc721_transfers >= 40
    assert newcomer.total_events <= 3
    assert newcomer.transfers_in == 1
    assert newcomer.tx_count == 0
    assert whale.balance_eth >= 1000
    assert whale.tx_count <= 5
    assert whale.contracts_deployed == 0
    assert builder.contracts_deployed >= 3
    assert builder.erc20_transfers > 0
    # Only the whale is rich and only the builder deploys: each rule fires for one wallet.
    assert [a for a, p in profiles.items() if p.balance_eth >= 1000] == ["whale"]
    assert [a for a, p in profiles.items() if p.contracts_deployed] == ["builder"]


async def test_six_personas_get_six_different_looks(seeded: Seeded) -> None:
    profiles = await _profiles(seeded)
    dna = load_style_dna(PROJECT_ROOT / "collections" / "default.toml")
    params = {archetype: rule_based_params(profile, dna) for archetype, profile in profiles.items()}
    assert {archetype: persona for archetype, (_, persona) in params.items()} == {a: a for a in ARCHETYPES}
    for (first, (one, _)), (second, (other, _)) in itertools.combinations(params.items(), 2):
        assert one.palette != other.palette, (first, second)
        assert one.medium != other.medium, (first, second)
        assert one.motif != other.motif, (first, second)


def test_seeding_is_fast(seeded: Seeded) -> None:
    print(f"\nseeded {seeded.result.tx_count} transactions in {seeded.result.seconds:.2f}s")
    assert seeded.result.tx_count >= 150
    assert seeded.result.seconds < SEEDING_BUDGET_S
