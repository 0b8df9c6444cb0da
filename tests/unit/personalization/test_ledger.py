"""The ledger: a history folded in two parts (cold to B, then B..H) equals it folded at once."""

from __future__ import annotations

import msgspec
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.history import AccountState, Interaction, Transfer, WalletHistory
from personalization.ledger import decode_ledger, encode_ledger, ledger_of, summarize
from personalization.summary import decode_summary, encode_summary

WALLET = to_checksum_address("0x" + "aa" * 20)
CONTRACTS = [to_checksum_address("0x" + f"{i:02x}" * 20) for i in (0x11, 0x22, 0x33)]
PEERS = [to_checksum_address("0x" + f"{i:02x}" * 20) for i in (0xB1, 0xB2, 0xB3, 0xB4)]
HEAD = 400


def _history(
    transfers: list[Transfer], interactions: list[Interaction], *, block: int, balance: int = 10**21
) -> WalletHistory:
    blocks = [t.block_number for t in transfers] + [i.block_number for i in interactions]
    return WalletHistory(
        chain_id=1,
        address=WALLET,
        block_number=block,
        from_block=0,
        balance_wei=balance,
        nonce=7,
        is_contract=False,
        transfers=tuple(transfers),
        interactions=tuple(interactions),
        first_activity_block=min(blocks) if blocks else None,
        first_activity_source="logs" if blocks else "none",
    )


transfer = st.builds(
    Transfer,
    standard=st.sampled_from(["erc20", "erc721", "erc1155"]),
    direction=st.sampled_from(["in", "out", "self"]),
    contract=st.sampled_from(CONTRACTS),
    counterparty=st.sampled_from(PEERS),
    block_number=st.integers(1, HEAD),
    token_id=st.sampled_from([1, 2, 2**255 + 3]),
    amount=st.sampled_from([1, 5, 2**200]),
    tx_hash=st.just("0x01"),
    log_index=st.integers(0, 3),
)
interaction = st.builds(
    Interaction,
    contract=st.sampled_from(CONTRACTS),
    topic0=st.just("0x" + "ee" * 32),
    block_number=st.integers(1, HEAD),
    tx_hash=st.just("0x02"),
)


def _ordered(transfers: list[Transfer], interactions: list[Interaction]) -> tuple[list[Transfer], list[Interaction]]:
    # As the scanner hands them over: sorted by block and log index.
    fungible = [t if t.standard != "erc20" else Transfer(**{**t.__dict__, "token_id": None}) for t in transfers]
    return (
        sorted(fungible, key=lambda t: (t.block_number, t.log_index)),
        sorted(interactions, key=lambda i: i.block_number),
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(transfer, max_size=40),
    st.lists(interaction, max_size=15),
    st.integers(0, HEAD - 1),
    st.sampled_from([10, 100, 1000]),
)
def test_folding_the_blocks_after_a_split_gives_the_cold_ledger(
    transfers: list[Transfer], interactions: list[Interaction], split: int, recent_blocks: int
) -> None:
    transfers, interactions = _ordered(transfers, interactions)
    cold = ledger_of(_history(transfers, interactions, block=HEAD), recent_blocks=recent_blocks)

    early = _history(
        [t for t in transfers if t.block_number <= split],
        [i for i in interactions if i.block_number <= split],
        block=split,
    )
    ledger = decode_ledger(encode_ledger(ledger_of(early, recent_blocks=recent_blocks)))
    ledger.fold([t for t in transfers if t.block_number > split], [i for i in interactions if i.block_number > split])
    ledger.advance(
        AccountState(WALLET, HEAD, 0, 10**21, 7, False, deployed_contracts=(), first_state_block=None), "0xhead"
    )
    assert ledger.summary() == cold.summary()
    assert sorted(ledger.counterparties) == sorted(cold.counterparties)
    assert {k: v.balances for k, v in ledger.tallies.items()} == {k: v.balances for k, v in cold.tallies.items()}


def test_the_summary_counts_what_happened() -> None:
    nft, token = CONTRACTS[0], CONTRACTS[1]
    transfers = [
        Transfer("erc721", "in", nft, PEERS[0], 10, 1, 1, "0x01", 0),
        Transfer("erc721", "in", nft, PEERS[1], 11, 2, 1, "0x02", 0),
        Transfer("erc721", "out", nft, PEERS[0], 12, 1, 1, "0x03", 0),
        Transfer("erc1155", "in", token, PEERS[2], 350, 9, 2**200, "0x04", 0),
        Transfer("erc1155", "out", token, PEERS[2], 351, 9, 2**200 - 1, "0x05", 0),
    ]
    summary = summarize(_history(transfers, [Interaction(token, "0xee", 351, "0x06")], block=HEAD), recent_blocks=100)
    by_kind = {(c.contract, c.kind): c for c in summary.contracts}
    assert by_kind[(nft, "erc721")].held == 1  # token 1 came and went, token 2 stayed
    assert by_kind[(token, "erc1155")].held == 1  # one unit of id 9 is left
    assert (summary.distinct_counterparties, summary.active_blocks) == (3, 5)
    assert summary.recent_events == 3  # blocks 350, 351 (a transfer and an interaction)
    assert [e.block_number for e in summary.recent][:2] == [351, 351]
    assert summary.recent[0].kind == "erc1155"  # a transfer ranks before an interaction of its block
    assert (summary.first_activity_block, summary.first_activity_source) == (10, "logs")


def test_a_rich_wallet_and_huge_amounts_round_trip_through_the_cache_encoding() -> None:
    transfers = [Transfer("erc1155", "in", CONTRACTS[2], PEERS[0], 5, 2**255, 2**255, "0x01", 0)]
    ledger = ledger_of(_history(transfers, [], block=HEAD, balance=123 * 10**24))
    assert decode_ledger(encode_ledger(ledger)) == ledger
    summary = ledger.summary()
    assert decode_summary(encode_summary(summary)) == summary
    assert summary.balance_wei == 123 * 10**24


def test_a_ledger_of_another_version_is_not_read() -> None:
    import pytest

    data = msgspec.json.decode(encode_ledger(ledger_of(_history([], [], block=HEAD))))
    data["version"] = 99
    with pytest.raises(msgspec.DecodeError):
        decode_ledger(msgspec.json.encode(data))
