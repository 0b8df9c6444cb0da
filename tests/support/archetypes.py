"""The six demo archetypes as wallet profiles, the way a reader of the orchestrator's rubric would describe them."""

from __future__ import annotations

from dataclasses import replace

from personalization.profile import WalletProfile

# A wallet that has done nothing: each archetype below is this plus its activity.
BLANK = WalletProfile(
    chain_id=31337,
    address="0x" + "11" * 20,
    block_number=1000,
    balance_eth=0.5,
    tx_count=0,
    is_contract=False,
    erc20_transfers=0,
    erc721_transfers=0,
    erc1155_transfers=0,
    transfers_in=0,
    transfers_out=0,
    interactions=0,
    distinct_contracts=0,
    distinct_counterparties=0,
    nfts_held=0,
    contracts_deployed=0,
    first_active_block=None,
    last_active_block=None,
    active_blocks=0,
)

# The six demo wallets as a reader of the rubric would describe them.
ARCHETYPES: dict[str, WalletProfile] = {
    "builder": replace(BLANK, tx_count=12, contracts_deployed=2, labels={"infrastructure": 2}, interactions=4),
    "whale": replace(
        BLANK, balance_eth=5000.0, tx_count=30, erc20_transfers=20, transfers_out=15, transfers_in=5, labels={"defi": 8}
    ),
    "gamer": replace(
        BLANK,
        tx_count=40,
        erc1155_transfers=60,
        transfers_in=55,
        transfers_out=5,
        labels={"gaming": 60, "defi": 3},
        first_active_block=100,
        last_active_block=900,
        top_contracts=(("0x" + "22" * 20, 60),),
        context={"achievements": ["a", "b", "c", "d", "e"], "hours": 500, "class": "mage"},
    ),
    "trader": replace(
        BLANK,
        tx_count=200,
        erc20_transfers=300,
        interactions=150,
        transfers_in=140,
        transfers_out=160,
        labels={"defi": 450},
        top_contracts=(("0x" + "33" * 20, 300), ("0x" + "44" * 20, 150)),
    ),
    "collector": replace(
        BLANK,
        tx_count=8,
        erc721_transfers=12,
        transfers_in=12,
        nfts_held=12,
        labels={"art": 12},
        top_contracts=(("0x" + "55" * 20, 12),),
    ),
    "newcomer": replace(BLANK, tx_count=1, erc20_transfers=1, transfers_in=1),
}
