"""A generated EVM chain behind real JSON-RPC: histories over a million blocks, which anvil cannot mine.

anvil's cost per mined block grows with the chain (measured here: the first 10,000 empty
blocks take ~50 s on 2 cores and the next 1,000 ~8 s), so a history spread over 1,000,000
blocks is generated instead: logs placed at known blocks and served with `eth_getLogs`'s
semantics (inclusive block range, topic positions with null and OR-lists, an address
filter, results by block and log index), plus what a history reader asks besides:
`eth_getBalance` / `eth_getTransactionCount` / `eth_getCode` at any block (from per-account
timelines), `eth_getBlockByNumber` (stable hashes), `eth_blockNumber`, `eth_chainId`, and
JSON-RPC batches. `generated_mine` appends a block with the logs it is given.

`tests/integration/personalization/test_generated_chain.py` replays anvil's logs and state into
this node and checks the history reader sees the same wallet through both.
Run as a process: `python -m tests.support.generated_chain --port P --transfers N --blocks B`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_utils.crypto import keccak

from tests.support.loopback import serve, shut

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SINGLE = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()


def topic_of(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def word(value: int) -> str:
    return value.to_bytes(32, "big").hex()


def block_hash(number: int) -> str:
    return "0x" + hashlib.blake2b(b"generated-block:%d" % number, digest_size=32).hexdigest()


@dataclass
class _Account:
    # (block, balance, nonce, code), ascending by block: the state from that block on.
    timeline: list[tuple[int, int, int, str]]

    def at(self, block: int) -> tuple[int, int, str]:
        index = bisect.bisect_right([entry[0] for entry in self.timeline], block) - 1
        if index < 0:
            return 0, 0, "0x"
        _, balance, nonce, code = self.timeline[index]
        return balance, nonce, code


class GeneratedChain:
    """Logs and account timelines served over JSON-RPC; append-only (a new block is a new head)."""

    def __init__(self, *, chain_id: int = 31337, head: int = 0) -> None:
        self.chain_id = chain_id
        self.head = head
        self.accounts: dict[str, _Account] = {}
        # Every log, in (block, log index) order, with its JSON pre-encoded (answers are joined bytes).
        self._blocks: list[int] = []
        self._logs: list[dict[str, Any]] = []
        self._encoded: list[str] = []
        # Topic position (1..3) → topic → positions in the lists above, ascending.
        self._index: list[dict[str, list[int]]] = [defaultdict(list) for _ in range(4)]
        self._index_blocks: list[dict[str, list[int]]] = [defaultdict(list) for _ in range(4)]  # their blocks
        self._log_index: dict[int, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # ---- building ------------------------------------------------------------------------
    def set_account(self, address: str, block: int, *, balance: int = 0, nonce: int = 0, code: str = "0x") -> None:
        account = self.accounts.setdefault(address.lower(), _Account([]))
        account.timeline.append((block, balance, nonce, code))
        account.timeline.sort(key=lambda entry: entry[0])

    def add_log(self, block: int, contract: str, topics: list[str], data: str = "0x") -> None:
        """Append a log; blocks must not decrease."""
        if self._blocks and block < self._blocks[-1]:
            raise ValueError("logs are appended in block order")
        index = self._log_index[block]
        self._log_index[block] = index + 1
        log = {
            "address": contract.lower(),
            "topics": topics,
            "data": data,
            "blockNumber": hex(block),
            "blockHash": block_hash(block),
            "transactionHash": "0x" + hashlib.blake2b(b"tx:%d:%d" % (block, index), digest_size=32).hexdigest(),
            "transactionIndex": hex(index),
            "logIndex": hex(index),
            "removed": False,
        }
        position = len(self._logs)
        self._blocks.append(block)
        self._logs.append(log)
        self._encoded.append(json.dumps(log, separators=(",", ":")))
        for slot, topic in enumerate(topics[:4]):
            if slot:
                self._index[slot][topic.lower()].append(position)
                self._index_blocks[slot][topic.lower()].append(block)
        self.head = max(self.head, block)

    # ---- eth_getLogs -----------------------------------------------------------------------
    def _block_tag(self, tag: Any) -> int:
        if tag in (None, "latest", "safe", "finalized", "pending"):
            return self.head
        if tag == "earliest":
            return 0
        return int(tag, 16)

    def logs(self, query: dict[str, Any]) -> list[int]:
        start, end = self._block_tag(query.get("fromBlock")), self._block_tag(query.get("toBlock"))
        wanted: list[set[str] | None] = []
        for entry in query.get("topics") or []:
            if entry is None:
                wanted.append(None)
            else:
                wanted.append({t.lower() for t in (entry if isinstance(entry, list) else [entry])})
        addresses = query.get("address")
        if isinstance(addresses, str):
            addresses = [addresses]
        address_set = {a.lower() for a in addresses} if addresses else None
        # Candidates from the most selective indexed position named, else every log in range.
        best: tuple[list[int], list[int]] | None = None
        for slot in range(1, min(4, len(wanted))):
            choice = wanted[slot]
            if choice is None:
                continue
            if len(choice) == 1:
                entry = self._index[slot].get(next(iter(choice)))
                pair = (entry, self._index_blocks[slot][next(iter(choice))]) if entry else ([], [])
            else:
                merged = sorted({p for topic in choice for p in self._index[slot].get(topic, [])})
                pair = (merged, [self._blocks[p] for p in merged])
            if best is None or len(pair[0]) < len(best[0]):
                best = pair
        if best is None:
            low, high = bisect.bisect_left(self._blocks, start), bisect.bisect_right(self._blocks, end)
            candidates: Sequence[int] = range(low, high)
        else:
            positions, blocks = best
            candidates = positions[bisect.bisect_left(blocks, start) : bisect.bisect_right(blocks, end)]
        found = []
        for position in candidates:
            log = self._logs[position]
            if address_set is not None and log["address"] not in address_set:
                continue
            topics = log["topics"]
            if len(wanted) > len(topics) and any(w is not None for w in wanted[len(topics) :]):
                continue
            if all(choice is None or topics[slot].lower() in choice for slot, choice in enumerate(wanted)):
                found.append(position)
        return found

    # ---- JSON-RPC --------------------------------------------------------------------------
    def answer(self, request: dict[str, Any]) -> str:
        """One request's JSON answer (results of eth_getLogs joined from pre-encoded logs)."""
        ident = json.dumps(request.get("id"))
        method, params = request.get("method"), request.get("params") or []
        try:
            if method == "eth_getLogs":
                with self._lock:
                    body = ",".join(self._encoded[p] for p in self.logs(params[0]))
                return f'{{"jsonrpc":"2.0","id":{ident},"result":[{body}]}}'
            result = self._call(str(method), params)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            error = {"code": -32602, "message": f"invalid params: {exc}"}
            return json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "error": error})
        if result is _UNKNOWN:
            error = {"code": -32601, "message": f"the method {method} does not exist/is not available"}
            return json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "error": error})
        return json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": result})

    def _state(self, address: str, tag: Any) -> tuple[int, int, str]:
        account = self.accounts.get(address.lower())
        return account.at(self._block_tag(tag)) if account else (0, 0, "0x")

    def _call(self, method: str, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getBalance":
            return hex(self._state(params[0], params[1] if len(params) > 1 else None)[0])
        if method == "eth_getTransactionCount":
            return hex(self._state(params[0], params[1] if len(params) > 1 else None)[1])
        if method == "eth_getCode":
            return self._state(params[0], params[1] if len(params) > 1 else None)[2]
        if method == "eth_getBlockByNumber":
            number = self._block_tag(params[0])
            if number > self.head:
                return None
            return {
                "number": hex(number),
                "hash": block_hash(number),
                "parentHash": block_hash(number - 1) if number else "0x" + "00" * 32,
                "timestamp": hex(1_700_000_000 + number),
                "transactions": [],
            }
        if method == "generated_mine":
            # params: [[{"address", "topics", "data"}, ...]] → a new block holding those logs.
            with self._lock:
                block = self.head + 1
                for log in params[0] if params else []:
                    self.add_log(block, log["address"], log["topics"], log.get("data", "0x"))
                self.head = block
            return hex(block)
        return _UNKNOWN

    def handle(self, raw: bytes) -> bytes:
        payload = json.loads(raw)
        if isinstance(payload, list):
            return ("[" + ",".join(self.answer(entry) for entry in payload) + "]").encode()
        return self.answer(payload).encode()

    # ---- HTTP --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> GeneratedChain:
        chain = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = chain.handle(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = serve(Handler, port)
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        shut(self._server)
        self._server = None

    def __enter__(self) -> GeneratedChain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_UNKNOWN = object()


@dataclass(frozen=True)
class BusyWallet:
    """What `busy_wallet` generated: the wallet, its contracts and the truth a reader must find."""

    wallet: str
    first_block: int
    last_block: int
    expected: dict[str, int]


def _address(label: str) -> str:
    return "0x" + keccak(text=label)[12:].hex()


def busy_wallet(chain: GeneratedChain, *, transfers: int, blocks: int, peers: int = 64) -> BusyWallet:
    """One wallet with `transfers` token transfers spread evenly over `blocks` blocks (funded at
    block 1): ERC-721 in, ERC-20 in, ERC-20 out and ERC-1155 in, in turn, with `peers` counterparties."""
    wallet = _address("generated-wallet")
    contracts = {kind: _address(f"generated-{kind}") for kind in ("erc20", "erc721", "erc1155")}
    others = [_address(f"generated-peer-{i}") for i in range(peers)]
    chain.set_account(wallet, 1, balance=5 * 10**18)
    step = max(1, (blocks - 2) // max(1, transfers))
    expected = {"erc20": 0, "erc721": 0, "erc1155": 0, "in": 0, "out": 0}
    first = 2
    block = first
    for index in range(transfers):
        block = first + index * step
        peer = others[index % peers]
        turn = index % 4
        if turn == 0:
            chain.add_log(
                block, contracts["erc721"], [TRANSFER, topic_of(peer), topic_of(wallet), "0x" + word(index + 1)]
            )
            kind, direction = "erc721", "in"
        elif turn in (1, 2):
            sender, receiver = (peer, wallet) if turn == 1 else (wallet, peer)
            chain.add_log(block, contracts["erc20"], [TRANSFER, topic_of(sender), topic_of(receiver)], "0x" + word(7))
            kind, direction = "erc20", "in" if turn == 1 else "out"
        else:
            topics = [TRANSFER_SINGLE, topic_of(peer), topic_of(peer), topic_of(wallet)]
            chain.add_log(block, contracts["erc1155"], topics, "0x" + word(index) + word(3))
            kind, direction = "erc1155", "in"
        expected[kind] += 1
        expected[direction] += 1
    chain.head = max(chain.head, blocks - 1)
    return BusyWallet(wallet=wallet, first_block=first, last_block=block, expected=expected)


def main() -> None:
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transfers", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=1_000_000)
    args = parser.parse_args()
    chain = GeneratedChain()
    seeded = busy_wallet(chain, transfers=args.transfers, blocks=args.blocks)
    chain.start(args.port)
    print(
        json.dumps(
            {
                "wallet": seeded.wallet,
                "first": seeded.first_block,
                "last": seeded.last_block,
                "head": chain.head,
                "expected": seeded.expected,
            }
        ),
        flush=True,
    )
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    chain.stop()


if __name__ == "__main__":
    main()
