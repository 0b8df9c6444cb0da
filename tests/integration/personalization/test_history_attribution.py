"""Every log of a generated chain counts for exactly its parties, in the right direction (issue #16).

A small version of benchmarks/history_attribution.py: six wallets, a few hundred logs, with
every trap (token ids equal to another wallet's address, ERC-1155 operators that are neither
party, batches, self transfers, mints, burns, plain ETH transactions, a wallet with no ETH).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess
from personalization.history import Transfer
from personalization.profile import build_profile
from personalization.registry import ContractRegistry
from tests.support.attribution import GeneratedChain, Reading, compare, generate, read_wallets
from tests.support.log_emitter import Chain

# Keeps historical state (anvil's default drops it), so a funded wallet's age comes from state.
ARCHIVE = ("--prune-history", "100000")
REGISTRY = ContractRegistry.builtin()


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[str, GeneratedChain]]:
    with AnvilProcess(extra_args=ARCHIVE) as node:
        chain = Chain(node.url)
        try:
            generated = generate(chain, dev_account(0).address, wallets=6, logs=400, seed=7)
        finally:
            chain.close()
        yield node.url, generated


async def test_no_log_is_misattributed_and_every_counter_matches(seeded: tuple[str, GeneratedChain]) -> None:
    url, generated = seeded
    # Every kind of log is there, traps included (the generator plays one of each first).
    kinds = [
        f"{standard}{case}" for standard in ("erc20", "erc721", "erc1155") for case in ("", "-self", "-mint", "-burn")
    ]
    kinds += [
        "erc721-id-trap",
        "erc1155-relayed",
        "erc1155-batch",
        "erc1155-batch-relayed",
        "protocol",
        "outsiders-only",
    ]
    assert set(generated.categories()) == set(kinds)
    decoys, relays = generated.decoys()
    assert decoys > 0
    assert relays > 0
    assert generated.eth_transfers > 0
    assert any(not truth.funded for truth in generated.truth.values())

    readings = await read_wallets(url, generated.wallets, generated.head, REGISTRY)
    comparison = compare(generated, readings, REGISTRY)

    assert comparison.details == []
    assert comparison.counter_mismatches == []
    assert comparison.misattributed_logs == 0
    assert comparison.counters_compared >= 6 * 20
    # The traps were really read: the reader saw operator-only relays as interactions.
    assert sum(profile.interactions for profile in (r.profile for r in readings.values())) >= relays


async def test_the_comparison_catches_each_kind_of_misattribution(seeded: tuple[str, GeneratedChain]) -> None:
    url, generated = seeded
    readings = await read_wallets(url, generated.wallets, generated.head, REGISTRY)
    topics = {"0x" + "00" * 12 + wallet[2:].lower(): wallet for wallet in generated.wallets}
    trap = next(log for log in generated.logs if log.category == "erc721-id-trap" and log.topics[3] in topics)
    victim = topics[trap.topics[3]]
    relay = next(log for log in generated.logs if log.category == "erc1155-relayed" and log.operator in readings)
    assert relay.operator is not None
    plain = {log.identity for log in generated.logs if log.category == "erc20"}
    flipped_wallet, flipped = next(
        (wallet, t)
        for wallet, reading in readings.items()
        for t in reading.history.transfers
        if (t.tx_hash, t.log_index) in plain and t.direction == "in"
    )

    def reread(wallet: str, transfers: tuple[Transfer, ...] | None = None, drop_interaction: bool = False) -> None:
        history = readings[wallet].history
        if transfers is not None:
            history = replace(history, transfers=transfers)
        if drop_interaction:
            kept = [i for i in history.interactions if i.tx_hash != relay.tx_hash]
            history = replace(history, interactions=tuple(kept))
        readings[wallet] = Reading(history, build_profile(history, REGISTRY))

    template = readings[flipped_wallet].history.transfers[0]
    credited = replace(
        template,
        standard="erc721",
        direction="in",
        contract=trap.contract,
        counterparty=trap.sender,
        block_number=trap.block_number,
        token_id=int(victim, 16),
        amount=1,
        tx_hash=trap.tx_hash,
        log_index=trap.log_index,
    )
    reread(victim, (*readings[victim].history.transfers, credited))
    transfers = readings[flipped_wallet].history.transfers
    reread(flipped_wallet, tuple(replace(t, direction="out") if t == flipped else t for t in transfers))
    reread(relay.operator, drop_interaction=True)

    comparison = compare(generated, readings, REGISTRY)
    assert comparison.misattributed_logs == 3
    assert comparison.misattributed_by_category() == {"erc721-id-trap": 1, "erc20": 1, "erc1155-relayed": 1}
    mismatched = {(wallet, name) for wallet, name, _, _ in comparison.counter_mismatches}
    assert (victim, "erc721_transfers") in mismatched
    assert (flipped_wallet, "transfers_out") in mismatched
    assert (relay.operator, "interactions") in mismatched
