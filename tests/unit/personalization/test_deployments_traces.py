"""Deployment scans against scripted nodes: trace detection and fallback, trace_filter paging and caps, reverts."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.rpc import JsonRpc
from personalization.deployments import (
    TRACE_FILTER_PAGE,
    RequestMeter,
    TraceMode,
    blocks_with_sends,
    created_address,
    find_deployments,
)
from personalization.errors import HISTORY_RPC_ERRORS, HistoryError, HistoryRpcError

WALLET = to_checksum_address("0x" + "aa" * 20)
FACTORY = to_checksum_address("0x" + "fa" * 20)
MADE = to_checksum_address("0x" + "0c" * 20)  # created by the factory in a call that succeeded
UNDONE = to_checksum_address("0x" + "0d" * 20)  # created inside a frame that later reverted
GONE = to_checksum_address("0x" + "0e" * 20)  # created, but holds no code at the tag


def _tx(n: int) -> str:
    return "0x" + f"{n:064x}"


class ScriptedNode:
    """A JSON-RPC node in-process: code at some addresses, optional trace methods, call counts."""

    def __init__(
        self,
        *,
        code_at: set[str],
        trace_error: dict[str, Any] | None = None,
        debug_error: dict[str, Any] | None = None,
        wallet_txs: int = 3,
        max_range: int | None = None,
    ) -> None:
        self.code_at = {a.lower() for a in code_at}
        self.trace_error = trace_error
        self.debug_error = debug_error
        self.wallet_txs = wallet_txs
        self.max_range = max_range
        self.calls: Counter[str] = Counter()
        self.http_requests = 0
        self.rpc = JsonRpc(
            "http://node.test",
            retries=0,
            errors=HISTORY_RPC_ERRORS,
            client=httpx.AsyncClient(transport=httpx.MockTransport(self._serve)),
        )

    def _serve(self, request: httpx.Request) -> httpx.Response:
        self.http_requests += 1
        payload = json.loads(request.content)
        entries = payload if isinstance(payload, list) else [payload]
        answers = [self._answer(entry) for entry in entries]
        return httpx.Response(200, json=answers if isinstance(payload, list) else answers[0])

    def _answer(self, entry: dict[str, Any]) -> dict[str, Any]:
        method, params = entry["method"], entry["params"]
        self.calls[method] += 1
        result: Any
        if method == "eth_getCode":
            result = "0x6000" if params[0].lower() in self.code_at else "0x"
        elif method.startswith("trace_") and self.trace_error:
            return {"jsonrpc": "2.0", "id": entry["id"], "error": self.trace_error}
        elif method.startswith("debug_") and self.debug_error:
            return {"jsonrpc": "2.0", "id": entry["id"], "error": self.debug_error}
        elif method == "trace_filter":
            query = params[0]
            start, end = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            if self.max_range and end - start + 1 > self.max_range:
                error = {"code": -32005, "message": f"exceed maximum block range: {self.max_range}"}
                return {"jsonrpc": "2.0", "id": entry["id"], "error": error}
            if query["fromAddress"] != [WALLET]:
                result = []
            else:
                tops = [self._top(n) for n in range(self.wallet_txs) if start <= 10 * n <= end]
                after, count = query.get("after", 0), query.get("count", len(tops))
                result = tops[after : after + count]
        elif method == "trace_transaction":
            result = self._trace(int(params[0], 16))
        elif method == "debug_traceTransaction":
            result = {"type": "CALL", "from": WALLET.lower(), "to": FACTORY.lower()}
        else:
            return {"jsonrpc": "2.0", "id": entry["id"], "error": {"code": -32601, "message": "Method not found"}}
        return {"jsonrpc": "2.0", "id": entry["id"], "result": result}

    @staticmethod
    def _top(n: int) -> dict[str, Any]:
        # Transaction n is mined in block 10·n; even ones call the factory, odd ones are plain transfers.
        return {
            "type": "call",
            "action": {"from": WALLET.lower(), "to": FACTORY.lower(), "callType": "call"},
            "traceAddress": [],
            "subtraces": 2 if n % 2 == 0 else 0,
            "transactionHash": _tx(n),
            "blockNumber": 10 * n,
        }

    @staticmethod
    def _trace(n: int) -> list[dict[str, Any]]:
        def create(path: list[int], address: str) -> dict[str, Any]:
            return {
                "type": "create",
                "action": {"from": FACTORY.lower()},
                "result": {"address": address.lower(), "code": "0x6000"},
                "traceAddress": path,
                "subtraces": 0,
                "transactionHash": _tx(n),
            }

        top = {**ScriptedNode._top(n), "subtraces": 2}
        # [0] creates MADE (or GONE in tx 2); [1] is a call that reverted after creating UNDONE.
        inner_call = {"type": "call", "action": {"from": FACTORY.lower()}, "traceAddress": [1], "error": "Reverted"}
        return [top, create([0], GONE if n == 2 else MADE), inner_call, create([1, 0], UNDONE)]


async def _scan(node: ScriptedNode, traces: TraceMode, **span: int) -> Any:
    ranges = {"nonce_from": 0, "nonce_to": 4, "from_block": 0, "to_block": 100} | span
    return await find_deployments(node.rpc, WALLET, tag="0x64", traces=traces, **ranges)


CREATED_AT_1 = created_address(WALLET, 1)


async def test_method_not_found_falls_back_to_the_create_scan_and_is_detected_once() -> None:
    missing = {"code": -32601, "message": "the method trace_filter does not exist/is not available"}
    node = ScriptedNode(code_at={CREATED_AT_1, MADE}, trace_error=missing, debug_error=missing)
    first = await _scan(node, "auto")
    assert first.create == (CREATED_AT_1,)
    assert first.factory == ()
    assert first.source == "create"
    assert node.calls["trace_filter"] == 1
    assert node.calls["debug_traceTransaction"] == 1
    assert first.requests == node.http_requests == 3  # two probes, one eth_getCode batch
    second = await _scan(node, "auto")
    assert second.source == "create"
    assert node.calls["trace_filter"] == 1  # the client remembers what the node lacks
    assert node.calls["debug_traceTransaction"] == 1
    assert second.requests == 1


async def test_a_provider_s_not_supported_message_counts_as_missing() -> None:
    refused = {"code": -32000, "message": "trace_filter is not supported on this network"}
    node = ScriptedNode(code_at={MADE}, trace_error=refused, debug_error={"code": -32601, "message": "nope"})
    scan = await _scan(node, "auto")
    assert scan.source == "create"


async def test_an_explicit_trace_mode_the_node_lacks_is_an_error() -> None:
    node = ScriptedNode(code_at=set(), trace_error={"code": -32601, "message": "Method not found"})
    with pytest.raises(HistoryError, match="does not serve trace_filter"):
        await _scan(node, "trace_filter")


async def test_traces_off_sends_no_trace_call() -> None:
    node = ScriptedNode(code_at={MADE})
    scan = await _scan(node, "off")
    assert scan.source == "create"
    assert not any(method.startswith(("trace_", "debug_")) for method in node.calls)


async def test_trace_filter_counts_only_live_creations_outside_reverted_frames() -> None:
    node = ScriptedNode(code_at={MADE, UNDONE}, wallet_txs=4)
    scan = await _scan(node, "trace_filter")
    assert scan.source == "trace_filter"
    # UNDONE still has code in this script, yet its frame reverted; GONE has none.
    assert scan.factory == (MADE,)
    # Transactions 0 and 2 have subtraces; 1 and 3 are plain transfers and are not traced.
    assert node.calls["trace_transaction"] == 2


async def test_trace_filter_shrinks_to_the_provider_s_block_cap_and_pages() -> None:
    node = ScriptedNode(code_at={MADE}, wallet_txs=2 * TRACE_FILTER_PAGE + 3, max_range=50)
    end = 10 * (2 * TRACE_FILTER_PAGE + 3)
    scan = await _scan(node, "trace_filter", to_block=end)
    assert scan.factory == (MADE,)
    # Every even transaction was found and traced, across windows of 50 blocks (5 tx each).
    assert node.calls["trace_transaction"] == TRACE_FILTER_PAGE + 2
    windows = -(-(end + 1) // 50)
    assert node.calls["trace_filter"] == 1 + 1 + windows  # the probe, the refused range, the windows


async def test_trace_filter_pages_with_after_and_count() -> None:
    node = ScriptedNode(code_at={MADE}, wallet_txs=2 * TRACE_FILTER_PAGE + 3)
    scan = await _scan(node, "trace_filter", to_block=10 * (2 * TRACE_FILTER_PAGE + 3))
    assert scan.factory == (MADE,)
    assert node.calls["trace_transaction"] == TRACE_FILTER_PAGE + 2
    assert node.calls["trace_filter"] == 1 + 3  # the probe, then three pages


class NonceNode:
    """Historical eth_getTransactionCount for a wallet whose transactions sit in known blocks."""

    def __init__(self, sends: dict[int, int], *, pruned_before: int = -1) -> None:
        self.sends = sends  # block → transactions the wallet sent in it
        self.pruned_before = pruned_before
        self.asked = 0

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        self.asked += len(calls)
        answers = []
        for _, (_, tag) in calls:
            block = int(tag, 16)
            if block < self.pruned_before:
                raise HistoryRpcError("eth_getTransactionCount", {"code": -32000, "message": "missing trie node"})
            answers.append(hex(sum(n for b, n in self.sends.items() if b <= block)))
        return answers


@pytest.mark.parametrize(
    ("sends", "low", "high"),
    [
        ({0: 1}, 0, 10),
        ({5: 2, 6: 1, 999_999: 1}, 0, 1_000_000),
        (dict.fromkeys(range(100, 200, 7), 1), 50, 500),
        ({7: 1, 30: 1}, 8, 29),  # nothing in range
        ({7: 1, 30: 1}, 7, 30),
    ],
)
async def test_the_nonce_search_finds_exactly_the_blocks_with_sends(sends: dict[int, int], low: int, high: int) -> None:
    node = NonceNode(sends)
    meter = RequestMeter(node)  # type: ignore[arg-type]
    found = await blocks_with_sends(meter, WALLET, low, high)
    assert found == sorted(b for b in sends if low <= b <= high)


async def test_the_nonce_search_gives_up_without_state() -> None:
    meter = RequestMeter(NonceNode({500: 1}, pruned_before=400))  # type: ignore[arg-type]
    assert await blocks_with_sends(meter, WALLET, 0, 1_000) is None


@settings(max_examples=60, deadline=None)
@given(
    sends=st.dictionaries(st.integers(0, 5_000), st.integers(1, 3), max_size=40),
    low=st.integers(0, 5_000),
    width=st.integers(0, 5_000),
)
def test_the_nonce_search_matches_a_block_by_block_scan(sends: dict[int, int], low: int, width: int) -> None:
    meter = RequestMeter(NonceNode(sends))  # type: ignore[arg-type]
    found = asyncio.run(blocks_with_sends(meter, WALLET, low, low + width))
    assert found == sorted(b for b in sends if low <= b <= low + width)
