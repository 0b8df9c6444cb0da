"""Seed token histories on anvil fast: tiny hand-assembled contracts that emit many events per call.

Each emitter is ~60 bytes of EVM code with one job: for id in [start, start + count) emit
a Transfer (ERC-20 or ERC-721), a TransferSingle (ERC-1155) or a protocol event naming
`from`. Calldata is four words: from, to, start, count. So a wallet can get thousands of
transfers from a few dozen transactions, and `anvil_mine` spreads them over blocks.
No compiler is needed; the same bytes deploy on any EVM chain.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

Kind = Literal["erc20", "erc721", "erc1155", "event"]

TRANSFER = keccak(text="Transfer(address,address,uint256)")
TRANSFER_SINGLE = keccak(text="TransferSingle(address,address,address,uint256,uint256)")
SWAP_EVENT = keccak(text="Swapped(address,uint256)")

_OP = {
    "STOP": 0x00,
    "ADD": 0x01,
    "LT": 0x10,
    "ISZERO": 0x15,
    "CALLDATALOAD": 0x35,
    "CODECOPY": 0x39,
    "MSTORE": 0x52,
    "JUMP": 0x56,
    "JUMPI": 0x57,
    "JUMPDEST": 0x5B,
    "DUP1": 0x80,
    "DUP2": 0x81,
    "SWAP1": 0x90,
    "LOG2": 0xA2,
    "LOG3": 0xA3,
    "LOG4": 0xA4,
    "RETURN": 0xF3,
}

Item = str | tuple[str, int | bytes | str]


def _assemble(program: Sequence[Item]) -> bytes:
    """Ops, ("PUSH", int|bytes), ("LABEL", name), ("PUSHLABEL", name) → bytecode (two passes)."""
    labels: dict[str, int] = {}
    for resolve in (False, True):
        code = bytearray()
        for item in program:
            if isinstance(item, str):
                code.append(_OP[item])
                continue
            op, arg = item
            if op == "LABEL":
                labels[str(arg)] = len(code)
            elif op == "PUSHLABEL":
                code += bytes([0x61]) + (labels.get(str(arg), 0) if resolve else 0).to_bytes(2, "big")
            elif op == "PUSH":
                raw = (
                    arg
                    if isinstance(arg, bytes)
                    else int(arg).to_bytes(max(1, (int(arg).bit_length() + 7) // 8), "big")
                )
                code += bytes([0x5F + len(raw)]) + raw
    return bytes(code)


def _load(offset: int) -> list[Item]:
    return [("PUSH", offset), "CALLDATALOAD"]


def runtime_code(kind: Kind) -> bytes:
    body: list[Item]
    if kind == "erc721":  # Transfer(from, to, tokenId=id): four topics, no data
        body = ["DUP1", *_load(0x20), *_load(0x00), ("PUSH", TRANSFER), ("PUSH", 0), ("PUSH", 0), "LOG4"]
    elif kind == "erc20":  # Transfer(from, to) data=amount(id): three topics
        body = [
            "DUP1",
            ("PUSH", 0),
            "MSTORE",
            *_load(0x20),
            *_load(0x00),
            ("PUSH", TRANSFER),
            ("PUSH", 0x20),
            ("PUSH", 0),
            "LOG3",
        ]
    elif kind == "erc1155":  # TransferSingle(operator=from, from, to) data=(id, 1)
        body = [
            "DUP1",
            ("PUSH", 0),
            "MSTORE",
            ("PUSH", 1),
            ("PUSH", 0x20),
            "MSTORE",
            *_load(0x20),
            *_load(0x00),
            *_load(0x00),
            ("PUSH", TRANSFER_SINGLE),
            ("PUSH", 0x40),
            ("PUSH", 0),
            "LOG4",
        ]
    else:  # Swapped(user=from) data=id: a protocol event, not a transfer
        body = ["DUP1", ("PUSH", 0), "MSTORE", *_load(0x00), ("PUSH", SWAP_EVENT), ("PUSH", 0x20), ("PUSH", 0), "LOG2"]
    return _assemble(
        [
            *_load(0x40),
            "DUP1",
            *_load(0x60),
            "ADD",
            "SWAP1",
            ("LABEL", "loop"),
            "JUMPDEST",
            "DUP2",
            "DUP2",
            "LT",
            "ISZERO",
            ("PUSHLABEL", "done"),
            "JUMPI",
            *body,
            ("PUSH", 1),
            "ADD",
            ("PUSHLABEL", "loop"),
            "JUMP",
            ("LABEL", "done"),
            "JUMPDEST",
            "STOP",
        ]
    )


def init_code(kind: Kind) -> bytes:
    """Constructor: CODECOPY the runtime (which follows it) to memory and RETURN it."""
    runtime = runtime_code(kind)
    offset = 0
    while True:
        prefix = _assemble(
            [("PUSH", len(runtime)), "DUP1", ("PUSH", offset), ("PUSH", 0), "CODECOPY", ("PUSH", 0), "RETURN"]
        )
        if len(prefix) == offset:
            return prefix + runtime
        offset = len(prefix)


def _word(value: int | str) -> str:
    number = int(value, 16) if isinstance(value, str) else value
    return number.to_bytes(32, "big").hex()


def call_data(sender: str, receiver: str, start: int, count: int) -> str:
    return "0x" + _word(sender) + _word(receiver) + _word(start) + _word(count)


class Chain:
    """Synchronous JSON-RPC helper for seeding (anvil's unlocked dev accounts sign)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=60, trust_env=False)
        self._id = 0

    def close(self) -> None:
        self.client.close()

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        payload = []
        for method, params in calls:
            self._id += 1
            payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        body = self.client.post(self.url, json=payload).json()
        by_id = {entry["id"]: entry for entry in body}
        results = []
        for request in payload:
            entry = by_id[request["id"]]
            if "error" in entry:
                raise RuntimeError(f"{request['method']}: {entry['error']}")
            results.append(entry.get("result"))
        return results

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]

    def head(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def mine(self, blocks: int) -> None:
        if blocks > 0:
            self.call("anvil_mine", hex(blocks))

    def deploy(self, deployer: str, kind: Kind) -> str:
        tx = self.call(
            "eth_sendTransaction", {"from": deployer, "data": "0x" + init_code(kind).hex(), "gas": "0x30000"}
        )
        receipt = self.receipt(tx)
        if receipt["status"] != "0x1":
            raise RuntimeError(f"deploying the {kind} emitter failed")
        address: str = to_checksum_address(receipt["contractAddress"])
        return address

    def receipt(self, tx: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.call("eth_getTransactionReceipt", tx)
            if receipt is not None:
                return dict(receipt)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no receipt for {tx}")
            time.sleep(0.01)

    def nonce(self, account: str) -> int:
        return int(self.call("eth_getTransactionCount", account, "pending"), 16)

    def emit_tx(
        self, signer: str, emitter: str, sender: str, receiver: str, start: int, count: int, nonce: int | None = None
    ) -> dict[str, Any]:
        """An unsigned tx for anvil to sign; pass local nonces when sending many in one batch."""
        tx = {
            "from": signer,
            "to": emitter,
            "data": call_data(sender, receiver, start, count),
            "gas": hex(40_000 + 4_000 * count),
        }
        if nonce is not None:
            tx["nonce"] = hex(nonce)
        return tx

    def emit(self, signer: str, emitter: str, sender: str, receiver: str, start: int, count: int) -> str:
        tx: str = self.call("eth_sendTransaction", self.emit_tx(signer, emitter, sender, receiver, start, count))
        return tx


@dataclass(frozen=True)
class SeededWallet:
    """A wallet with a known history, and what a correct reader must find in it."""

    wallet: str
    emitters: dict[str, str]
    funded_block: int  # the block where the wallet first got ETH (its first state footprint)
    first_event_block: int
    last_event_block: int
    head: int
    expected: dict[str, Any] = field(default_factory=dict)


def fresh_address(label: str) -> str:
    return to_checksum_address(keccak(text=label)[12:])


def seed_small_history(chain: Chain, deployer: str, *, label: str = "wallet", spread: int = 7) -> SeededWallet:
    """~40 events of every kind touching one fresh wallet, `spread` blocks apart, funded first."""
    wallet = fresh_address(label)
    emitters = {kind: chain.deploy(deployer, kind) for kind in ("erc20", "erc721", "erc1155", "event")}
    peers = {name: fresh_address(f"{label}:{name}") for name in "ABCDE"}
    chain.mine(5)
    fund = chain.call("eth_sendTransaction", {"from": deployer, "to": wallet, "value": hex(10**18)})
    funded_block = int(chain.receipt(fund)["blockNumber"], 16)
    chain.mine(spread)
    # (kind, sender, receiver, first id, count)
    plan: list[tuple[Kind, str, str, int, int]] = [
        ("erc721", peers["A"], wallet, 1, 5),
        ("erc721", peers["A"], wallet, 6, 4),
        ("erc721", peers["A"], wallet, 10, 3),
        ("erc721", wallet, peers["B"], 1, 2),
        ("erc20", peers["C"], wallet, 100, 5),
        ("erc20", wallet, peers["D"], 200, 3),
        ("erc20", wallet, wallet, 300, 1),
        ("erc1155", peers["E"], wallet, 7, 4),
        ("event", wallet, wallet, 1, 6),
    ]
    blocks = []
    for kind, sender, receiver, start, count in plan:
        tx = chain.emit(deployer, emitters[kind], sender, receiver, start, count)
        blocks.append(int(chain.receipt(tx)["blockNumber"], 16))
        chain.mine(spread)
    expected = {
        "erc721_transfers": 14,
        "erc20_transfers": 9,
        "erc1155_transfers": 4,
        "interactions": 6,
        "transfers_in": 12 + 5 + 4,
        "transfers_out": 2 + 3,
        "nfts_held": 10,
        "items_held": 4,
        "distinct_counterparties": 5,
        "distinct_contracts": 4,
        "active_blocks": len(set(blocks)),
        "flows": {
            "erc20_in": 5,
            "erc20_out": 3,
            "erc721_in": 12,
            "erc721_out": 2,
            "erc1155_in": 4,
            "erc1155_out": 0,
        },
    }
    return SeededWallet(
        wallet=wallet,
        emitters=emitters,
        funded_block=funded_block,
        first_event_block=min(blocks),
        last_event_block=max(blocks),
        head=chain.head(),
        expected=expected,
    )
