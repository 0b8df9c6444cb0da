"""History reading without a node: window adaptation, state search, log classification, summaries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.rpc import RpcCallError
from personalization.errors import HistoryError
from personalization.history import (
    TRANSFER_BATCH_TOPIC,
    TRANSFER_SINGLE_TOPIC,
    TRANSFER_TOPIC,
    LogScanner,
    Transfer,
    WalletHistory,
    address_topic,
    classify_logs,
    first_activity_from_state,
)
from personalization.ledger import summarize
from personalization.profile import build_profile
from personalization.registry import ContractRegistry, KnownContract
from personalization.summary import decode_summary, encode_summary

WALLET = to_checksum_address("0x" + "aa" * 20)
PEER = to_checksum_address("0x" + "bb" * 20)
TOKEN = to_checksum_address("0x" + "11" * 20)
NFT = to_checksum_address("0x" + "22" * 20)


def _log(block: int, index: int, topics: list[str], data: str = "0x", address: str = TOKEN) -> dict[str, Any]:
    return {
        "address": address.lower(),
        "blockNumber": hex(block),
        "logIndex": hex(index),
        "transactionHash": "0x" + f"{block:064x}",
        "topics": topics,
        "data": data,
    }


class FakeLogsRpc:
    """eth_getLogs over one log per block in [0, blocks), with a provider's range/result caps."""

    def __init__(self, blocks: int, *, max_range: int | None = None, max_results: int | None = None, hint: bool = True):
        self.logs = {
            b: _log(b, 0, [TRANSFER_TOPIC, address_topic(PEER), address_topic(WALLET)], "0x" + "0" * 63 + "1")
            for b in range(blocks)
        }
        self.max_range = max_range
        self.max_results = max_results
        self.hint = hint
        self.ranges: list[tuple[int, int]] = []
        self.inflight = 0
        self.max_inflight = 0

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await asyncio.sleep(0)
            results = []
            for method, params in calls:
                query = params[0]
                low, high = int(query["fromBlock"], 16), int(query["toBlock"], 16)
                self.ranges.append((low, high))
                if self.max_range is not None and high - low + 1 > self.max_range:
                    message = f"exceed maximum block range: {self.max_range}" if self.hint else "block range too wide"
                    raise RpcCallError(method, {"code": -32005, "message": message})
                # Only the "to" position matches in this fake, like a real node filtering topics.
                found = [self.logs[b] for b in range(low, high + 1) if b in self.logs] if query["topics"][2:] else []
                if self.max_results is not None and len(found) > self.max_results:
                    raise RpcCallError(method, {"code": -32005, "message": "query returned more than 5 results"})
                results.append(found)
            return results
        finally:
            self.inflight -= 1


FILTERS: list[list[str | None]] = [[None, address_topic(WALLET)], [None, None, address_topic(WALLET)]]


@pytest.mark.parametrize(
    ("max_range", "max_results", "hint"),
    [(None, None, True), (10, None, True), (10, None, False), (None, 5, True), (1, None, True)],
)
def test_scanner_finds_every_log_whatever_the_caps(max_range: int | None, max_results: int | None, hint: bool) -> None:
    rpc = FakeLogsRpc(300, max_range=max_range, max_results=max_results, hint=hint)
    scanner = LogScanner(rpc, window=10_000, concurrency=3)  # type: ignore[arg-type]
    logs = asyncio.run(scanner.scan(0, 299, FILTERS))
    assert sorted(int(log["blockNumber"], 16) for log in logs) == list(range(300))
    assert rpc.max_inflight <= 3
    if max_range or max_results:
        # After the first refusal splits the range, every worker gets a share of it.
        assert rpc.max_inflight == 3
    if max_range and hint:
        # One refusal names the cap; every later window fits it.
        refused = [r for r in rpc.ranges if r[1] - r[0] + 1 > max_range]
        assert len(refused) == 1
        assert scanner.ceiling == max_range


def test_a_result_limit_shrinks_the_window_but_lets_it_grow_back() -> None:
    rpc = FakeLogsRpc(2000, max_results=5)
    scanner = LogScanner(rpc, window=1000, concurrency=1)  # type: ignore[arg-type]
    asyncio.run(scanner.scan(0, 1999, FILTERS))
    assert scanner.ceiling == 1000  # no block cap was learned
    assert scanner.window <= 8


def test_errors_other_than_range_limits_surface_as_themselves() -> None:
    class Broken:
        async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
            raise RpcCallError("eth_getLogs", {"code": -32000, "message": "header not found"})

    with pytest.raises(RpcCallError, match="header not found"):
        asyncio.run(LogScanner(Broken(), concurrency=4).scan(0, 100, FILTERS))  # type: ignore[arg-type]


def test_a_single_block_that_is_still_refused_is_a_history_error() -> None:
    rpc = FakeLogsRpc(10, max_results=0)
    with pytest.raises(HistoryError, match="even for block"):
        asyncio.run(LogScanner(rpc, concurrency=2).scan(0, 9, FILTERS))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "window", "result_limit"),
    [
        ("exceed maximum block range: 5000", 5000, False),
        ("eth_getLogs is limited to a 10,000 range", 10_000, False),
        ("block range is too wide", None, False),
        ("query returned more than 10000 results", None, True),
        (
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit "
            "on the response size, or you can request any block range with a cap of 10K logs in the response. "
            "Based on your parameters, this block range should work: [0x10, 0x5f]",
            80,
            True,
        ),
        ("ranges over 500 blocks are not supported", 500, False),
    ],
)
def test_provider_messages_are_read_for_a_window_that_works(
    message: str, window: int | None, result_limit: bool
) -> None:
    error = RpcCallError("eth_getLogs", {"code": -32005, "message": message})
    assert error.is_range_limit
    assert error.suggested_window() == window
    assert error.is_result_limit is result_limit
    assert not RpcCallError("eth_call", {"message": message}).is_range_limit


class FakeStateRpc:
    """Nonce/balance per block for an account first funded at `first` (None: history pruned before `kept`)."""

    def __init__(self, first: int, kept: int = 0) -> None:
        self.first = first
        self.kept = kept
        self.rounds = 0

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self.rounds += 1
        answers = []
        for method, (_, tag) in calls:
            block = int(tag, 16)
            if block < self.kept:
                raise RpcCallError(method, {"code": -32000, "message": "missing trie node"})
            active = block >= self.first
            if method == "eth_getCode":
                answers.append("0x6000" if active else "0x")
            elif method == "eth_getBalance":
                answers.append(hex(10**18) if active else "0x0")
            else:
                answers.append(hex(int(active)))
        return answers


@settings(max_examples=200, deadline=None)
@given(
    low=st.integers(0, 1000),
    span=st.integers(0, 3_000_000),
    offset=st.floats(0, 1),
    fanout=st.integers(1, 16),
    by_code=st.booleans(),
)
def test_state_search_finds_the_first_active_block(
    low: int, span: int, offset: float, fanout: int, by_code: bool
) -> None:
    high = low + span
    first = low + int(offset * span)
    rpc = FakeStateRpc(first)
    found = asyncio.run(
        first_activity_from_state(rpc, WALLET, low, high, by_code=by_code, fanout=fanout)  # type: ignore[arg-type]
    )
    assert found == first
    if fanout >= 8:
        assert rpc.rounds <= 9  # ~log9(3M) + the first probe


def test_state_search_gives_up_where_the_node_keeps_no_history() -> None:
    rpc = FakeStateRpc(first=500, kept=400)
    assert asyncio.run(first_activity_from_state(rpc, WALLET, 0, 1000)) is None  # type: ignore[arg-type]


def test_logs_are_told_apart_by_topic_count_and_event() -> None:
    word = lambda n: f"{n:064x}"  # noqa: E731
    logs = [
        _log(1, 0, [TRANSFER_TOPIC, address_topic(PEER), address_topic(WALLET)], "0x" + word(500)),
        _log(2, 0, [TRANSFER_TOPIC, address_topic(WALLET), address_topic(PEER), "0x" + word(7)], address=NFT),
        _log(
            3,
            0,
            [TRANSFER_SINGLE_TOPIC, address_topic(PEER), address_topic(PEER), address_topic(WALLET)],
            "0x" + word(9) + word(4),
            address=NFT,
        ),
        _log(
            4,
            0,
            [TRANSFER_BATCH_TOPIC, address_topic(PEER), address_topic(WALLET), address_topic(WALLET)],
            "0x" + word(64) + word(160) + word(2) + word(1) + word(2) + word(2) + word(5) + word(6),
            address=NFT,
        ),
        _log(5, 0, ["0x" + "ab" * 32, address_topic(WALLET)], "0x"),
        _log(6, 0, [TRANSFER_TOPIC, address_topic(PEER), address_topic(WALLET)], "0x12"),  # malformed amount
    ]
    logs.append(dict(logs[0]))  # the same log found by two filters counts once
    transfers, interactions = classify_logs(WALLET, logs)
    kinds = [(t.standard, t.direction, t.token_id, t.amount) for t in transfers]
    assert kinds == [
        ("erc20", "in", None, 500),
        ("erc721", "out", 7, 1),
        ("erc1155", "in", 9, 4),
        ("erc1155", "self", 1, 5),
        ("erc1155", "self", 2, 6),
    ]
    assert [i.block_number for i in interactions] == [5, 6]


def test_a_log_counts_for_the_wallet_only_when_its_decoded_from_or_to_is_the_wallet() -> None:
    word = lambda n: f"{n:064x}"  # noqa: E731
    other = to_checksum_address("0x" + "cc" * 20)
    as_token_id = "0x" + word(int(WALLET, 16))  # an unrelated NFT whose token id is uint160(wallet)
    logs = [
        _log(1, 0, [TRANSFER_TOPIC, address_topic(PEER), address_topic(other), as_token_id], address=NFT),
        _log(2, 0, [TRANSFER_TOPIC, address_topic(other), address_topic(PEER), as_token_id], address=NFT),
        # The wallet as an ERC-1155 operator moving others' items: an interaction, never a transfer.
        _log(
            3,
            0,
            [TRANSFER_SINGLE_TOPIC, address_topic(WALLET), address_topic(PEER), address_topic(other)],
            "0x" + word(9) + word(4),
            address=NFT,
        ),
        # An ERC-1155 log whose `to` is another wallet, matched on an id-shaped topic of the wallet.
        _log(
            4,
            0,
            [TRANSFER_SINGLE_TOPIC, address_topic(other), address_topic(PEER), address_topic(other)],
            "0x" + word(9) + word(4),
            address=NFT,
        ),
        # The wallet's own: received as the operator of its own transfer.
        _log(
            5,
            0,
            [TRANSFER_SINGLE_TOPIC, address_topic(WALLET), address_topic(PEER), address_topic(WALLET)],
            "0x" + word(9) + word(4),
            address=NFT,
        ),
    ]
    transfers, interactions = classify_logs(WALLET, logs)
    assert [(t.block_number, t.standard, t.direction, t.counterparty) for t in transfers] == [
        (5, "erc1155", "in", PEER)
    ]
    assert [(i.block_number, i.contract) for i in interactions] == [(3, NFT)]


def _history(transfers: list[Transfer], nonce: int = 3) -> WalletHistory:
    return WalletHistory(
        chain_id=1,
        address=WALLET,
        block_number=1000,
        from_block=0,
        balance_wei=2 * 10**18,
        nonce=nonce,
        is_contract=False,
        transfers=tuple(transfers),
        first_activity_block=5,
        first_activity_source="state",
    )


def test_summary_round_trips_and_builds_the_same_profile_as_the_history() -> None:
    transfers = [
        Transfer("erc721", "in", NFT, PEER, 10, 1, 1, "0x01", 0),
        Transfer("erc721", "in", NFT, PEER, 11, 2, 1, "0x02", 0),
        Transfer("erc721", "out", NFT, PEER, 12, 1, 1, "0x03", 0),
        Transfer("erc20", "in", TOKEN, PEER, 990, None, 50, "0x04", 0),
        Transfer("erc20", "self", TOKEN, WALLET, 995, None, 50, "0x05", 0),
    ]
    history = _history(transfers)
    summary = summarize(history, recent_blocks=100)
    assert decode_summary(encode_summary(summary)) == summary
    registry = ContractRegistry([KnownContract(1, NFT, "Art", "art")])
    assert build_profile(history, registry) == build_profile(summarize(history), registry)
    profile = build_profile(summary, registry)
    assert (profile.erc721_transfers, profile.erc20_transfers, profile.nfts_held) == (3, 2, 1)
    assert (profile.transfers_in, profile.transfers_out, profile.distinct_counterparties) == (3, 1, 1)
    assert profile.labels == {"art": 3}
    assert profile.recent_events == 2
    assert profile.first_activity_block == 5
    assert profile.top_collections == ((NFT, 3),)
    assert profile.top_tokens == ((TOKEN, 2),)
    assert summary.recent[0].block_number == 995
    assert profile.flows["erc721_out"] == 1


def test_a_summary_of_another_version_is_not_read() -> None:
    import msgspec

    data = msgspec.json.decode(encode_summary(summarize(_history([]))))
    data["version"] = 99
    with pytest.raises(msgspec.DecodeError):
        decode_summary(msgspec.json.encode(data))
