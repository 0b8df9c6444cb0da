"""Read a wallet's on-chain history over plain EVM JSON-RPC into a WalletHistory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

import rlp
from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from personalization.errors import HistoryError
from personalization.rpc import JsonRpcClient, RpcCallError

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SINGLE_TOPIC = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()
TRANSFER_BATCH_TOPIC = "0x" + keccak(text="TransferBatch(address,address,address,uint256[],uint256[])").hex()
ZERO_ADDRESS = "0x" + "00" * 20

Standard = Literal["erc20", "erc721", "erc1155"]
Direction = Literal["in", "out", "self"]


@dataclass(frozen=True)
class Transfer:
    """One token movement touching the wallet."""

    standard: Standard
    direction: Direction
    contract: str
    counterparty: str
    block_number: int
    token_id: int | None
    amount: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Interaction:
    """A non-transfer event that names the wallet: a call into some contract."""

    contract: str
    topic0: str
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class WalletHistory:
    """Everything read from the chain for one wallet at one block."""

    chain_id: int
    address: str
    block_number: int
    from_block: int
    balance_wei: int
    nonce: int
    is_contract: bool
    transfers: tuple[Transfer, ...] = field(default=())
    interactions: tuple[Interaction, ...] = field(default=())
    deployed_contracts: tuple[str, ...] = field(default=())


def address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def _topic_address(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


def created_address(sender: str, nonce: int) -> str:
    """The address a CREATE from sender at nonce lands at."""
    raw = rlp.encode([bytes.fromhex(sender[2:]), nonce])
    return to_checksum_address(keccak(raw)[12:])


def _direction(wallet: str, sender: str, receiver: str) -> tuple[Direction, str]:
    if sender == wallet and receiver == wallet:
        return "self", wallet
    if receiver == wallet:
        return "in", sender
    return "out", receiver


def classify_logs(wallet: str, logs: list[dict[str, Any]]) -> tuple[list[Transfer], list[Interaction]]:
    """Tell ERC-20 from ERC-721 by topic count, 1155 by its events; the rest are interactions."""
    transfers: list[Transfer] = []
    interactions: list[Interaction] = []
    seen: set[tuple[str, int]] = set()
    for log in logs:
        identity = (log["transactionHash"], int(log["logIndex"], 16))
        if identity in seen:
            continue
        seen.add(identity)
        topics = log["topics"]
        contract = to_checksum_address(log["address"])
        block_number = int(log["blockNumber"], 16)
        data = bytes.fromhex(log["data"][2:])
        common = {"contract": contract, "block_number": block_number, "tx_hash": log["transactionHash"]}
        topic0 = topics[0] if topics else ""
        try:
            if topic0 == TRANSFER_TOPIC and len(topics) in (3, 4):
                sender, receiver = _topic_address(topics[1]), _topic_address(topics[2])
                direction, counterparty = _direction(wallet, sender, receiver)
                if len(topics) == 3:
                    (amount,) = abi_decode(["uint256"], data) if data else (0,)
                    transfers.append(
                        Transfer(
                            "erc20",
                            direction,
                            counterparty=counterparty,
                            token_id=None,
                            amount=amount,
                            log_index=identity[1],
                            **common,
                        )
                    )
                else:
                    transfers.append(
                        Transfer(
                            "erc721",
                            direction,
                            counterparty=counterparty,
                            token_id=int(topics[3], 16),
                            amount=1,
                            log_index=identity[1],
                            **common,
                        )
                    )
                continue
            if topic0 in (TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC) and len(topics) == 4:
                sender, receiver = _topic_address(topics[2]), _topic_address(topics[3])
                direction, counterparty = _direction(wallet, sender, receiver)
                if topic0 == TRANSFER_SINGLE_TOPIC:
                    token_id, amount = abi_decode(["uint256", "uint256"], data)
                    pairs = [(token_id, amount)]
                else:
                    ids, amounts = abi_decode(["uint256[]", "uint256[]"], data)
                    pairs = list(zip(ids, amounts, strict=False))
                for token_id, amount in pairs:
                    transfers.append(
                        Transfer(
                            "erc1155",
                            direction,
                            counterparty=counterparty,
                            token_id=token_id,
                            amount=amount,
                            log_index=identity[1],
                            **common,
                        )
                    )
                continue
        except Exception:  # noqa: BLE001, S110 - a malformed log from a hostile contract is not a transfer
            pass
        interactions.append(Interaction(topic0=topic0, **common))
    return transfers, interactions


class LogScanner:
    """Scans eth_getLogs in block windows, shrinking the window when a provider refuses a range."""

    def __init__(self, rpc: JsonRpcClient, *, window: int = 10_000, concurrency: int = 4) -> None:
        self.rpc = rpc
        self.window = max(1, window)
        self._limit = asyncio.Semaphore(concurrency)

    async def _logs(self, start: int, end: int, topic_filters: list[list[str | None]]) -> list[dict[str, Any]]:
        calls = [
            ("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "topics": topics}])
            for topics in topic_filters
        ]
        try:
            async with self._limit:
                results = await self.rpc.batch(calls)
        except RpcCallError as exc:
            if not exc.is_range_limit or start == end:
                raise
            middle = (start + end) // 2
            # Remember the smaller window so later ranges do not fail the same way.
            self.window = max(1, min(self.window, middle - start + 1))
            left, right = await asyncio.gather(
                self._logs(start, middle, topic_filters), self._logs(middle + 1, end, topic_filters)
            )
            return left + right
        return [log for result in results for log in (result or [])]

    async def scan(self, start: int, end: int, topic_filters: list[list[str | None]]) -> list[dict[str, Any]]:
        tasks = []
        cursor = start
        while cursor <= end:
            stop = min(end, cursor + self.window - 1)
            tasks.append(self._logs(cursor, stop, topic_filters))
            cursor = stop + 1
        chunks = await asyncio.gather(*tasks)
        return [log for chunk in chunks for log in chunk]


async def fetch_history(
    rpc: JsonRpcClient,
    address: str,
    *,
    block: int | None = None,
    max_depth: int = 2_000_000,
    window: int = 10_000,
    concurrency: int = 4,
    deployed_scan_limit: int = 64,
) -> WalletHistory:
    """Read balance, nonce, code, transfers, interactions and deployments at one block."""
    wallet = to_checksum_address(address)
    if block is None:
        head, chain_id_hex = await rpc.batch([("eth_blockNumber", []), ("eth_chainId", [])])
        block = int(head, 16)
    else:
        (chain_id_hex,) = await rpc.batch([("eth_chainId", [])])
    tag = hex(block)
    balance, nonce, code = await rpc.batch(
        [
            ("eth_getBalance", [wallet, tag]),
            ("eth_getTransactionCount", [wallet, tag]),
            ("eth_getCode", [wallet, tag]),
        ]
    )
    from_block = max(0, block - max_depth + 1)
    topic = address_topic(wallet)
    # The wallet as any indexed argument: transfers (from/to) and protocol events (user).
    filters: list[list[str | None]] = [[None, topic], [None, None, topic], [None, None, None, topic]]
    logs = await LogScanner(rpc, window=window, concurrency=concurrency).scan(from_block, block, filters)
    logs.sort(key=lambda entry: (int(entry["blockNumber"], 16), int(entry["logIndex"], 16)))
    transfers, interactions = classify_logs(wallet, logs)

    nonce_value = int(nonce, 16)
    deployed: list[str] = []
    candidates = [created_address(wallet, n) for n in range(min(nonce_value, deployed_scan_limit))]
    if candidates:
        codes = await rpc.batch([("eth_getCode", [c, tag]) for c in candidates])
        deployed = [c for c, found in zip(candidates, codes, strict=True) if found not in (None, "0x", "0x0")]
    if not isinstance(balance, str):
        raise HistoryError("eth_getBalance returned no value")
    return WalletHistory(
        chain_id=int(chain_id_hex, 16),
        address=wallet,
        block_number=block,
        from_block=from_block,
        balance_wei=int(balance, 16),
        nonce=nonce_value,
        is_contract=code not in (None, "0x", "0x0"),
        transfers=tuple(transfers),
        interactions=tuple(interactions),
        deployed_contracts=tuple(deployed),
    )
