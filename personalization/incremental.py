"""Move a wallet's ledger from the block it read to a newer head: only the new blocks are read.

Three reads at once: the account at the new head `since` the ledger's account (the state,
deployments at the nonces used since only, the first footprint only when the ledger had
none: history.read_account_state), the two block hashes (the ledger's block, still
canonical? and the head's), and the log scan over (B, head] with the same topic filters and
adaptive windows as a cold read. A ledger whose block is no longer on the chain (a reorg) is
not advanced: the caller reads cold.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eth_utils.address import to_checksum_address

from personalization.errors import HistoryError
from personalization.history import (
    LogScanner,
    RpcHistorySource,
    classify_logs,
    read_account_state,
    wallet_topic_filters,
)
from personalization.ledger import Ledger


def _hash_of(block: Any) -> str | None:
    return block.get("hash") if isinstance(block, dict) else None


async def block_hash(source: RpcHistorySource, number: int) -> str:
    """The hash of a canonical block (for a cold read's ledger)."""
    found = _hash_of(await source.rpc.call("eth_getBlockByNumber", [hex(number), False]))
    if found is None:
        raise HistoryError(f"the node has no block {number}")
    return found


async def advance_ledger(source: RpcHistorySource, ledger: Ledger, block: int) -> Ledger | None:
    """The ledger moved to `block` (folded in place and returned); None after a reorg of its block."""
    if block < ledger.block_number:
        raise ValueError("a ledger only moves forward")
    if block == ledger.block_number:
        return ledger
    rpc = source.rpc
    wallet = to_checksum_address(ledger.address)
    scanner = LogScanner(rpc, window=source.window, concurrency=source.concurrency)
    state, (then, now), logs = await asyncio.gather(
        read_account_state(
            rpc,
            wallet,
            block=block,
            max_depth=source.max_depth,
            deployed_scan_limit=source.deployed_scan_limit,
            search_first_activity=source.search_first_activity,
            traces=source.traces,
            since=ledger.account(),
        ),
        rpc.batch(
            [("eth_getBlockByNumber", [hex(ledger.block_number), False]), ("eth_getBlockByNumber", [hex(block), False])]
        ),
        scanner.scan(ledger.block_number + 1, block, wallet_topic_filters(wallet)),
    )
    if _hash_of(then) != ledger.block_hash:
        return None
    head_hash = _hash_of(now)
    if head_hash is None:
        raise HistoryError(f"the node has no block {block}")
    logs.sort(key=lambda entry: (int(entry["blockNumber"], 16), int(entry["logIndex"], 16)))
    transfers, interactions = classify_logs(wallet, logs)
    ledger.fold(transfers, interactions)
    ledger.advance(state, head_hash)
    return ledger
