"""Move a wallet's ledger from the block it read to a newer head: only the new blocks are read.

One batch reads the account state at the new head and the two block hashes (the
ledger's block, still canonical? and the head's), while the log scan covers (B, head]
with the same topic filters and adaptive windows as a cold read. Deployments are looked
for only at the nonces the wallet used since, and the first footprint is searched only
when the ledger had none. A ledger whose block is no longer on the chain (a reorg) is
not advanced: the caller reads cold.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eth_utils.address import to_checksum_address

from personalization.deployments import find_deployments
from personalization.errors import HistoryError
from personalization.history import (
    EMPTY_CODE,
    AccountState,
    LogScanner,
    RpcHistorySource,
    classify_logs,
    first_activity_from_state,
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
    tag = hex(block)
    scanner = LogScanner(rpc, window=source.window, concurrency=source.concurrency)
    state_call = rpc.batch(
        [
            ("eth_getBalance", [wallet, tag]),
            ("eth_getTransactionCount", [wallet, tag]),
            ("eth_getCode", [wallet, tag]),
            ("eth_getBlockByNumber", [hex(ledger.block_number), False]),
            ("eth_getBlockByNumber", [tag, False]),
        ]
    )
    answers, logs = await asyncio.gather(
        state_call, scanner.scan(ledger.block_number + 1, block, wallet_topic_filters(wallet))
    )
    balance, nonce, code, then, now = answers
    if _hash_of(then) != ledger.block_hash:
        return None
    head_hash = _hash_of(now)
    if not isinstance(balance, str) or not isinstance(nonce, str) or head_hash is None:
        raise HistoryError("eth_getBalance/eth_getTransactionCount/eth_getBlockByNumber returned no value")
    nonce_value, balance_value = int(nonce, 16), int(balance, 16)
    is_contract = code not in EMPTY_CODE

    deployed: tuple[str, ...] = ()
    deployments_source = ""
    if nonce_value > ledger.nonce:
        scan = await find_deployments(
            rpc,
            wallet,
            nonce_from=ledger.nonce,
            nonce_to=nonce_value,
            from_block=ledger.block_number + 1,
            to_block=block,
            tag=tag,
            traces=source.traces,
        )
        deployed, deployments_source = scan.contracts, scan.source
    first_state: int | None = None
    footprint = is_contract or nonce_value > 0 or balance_value > 0
    if ledger.first_state_block is None and not ledger.had_footprint and footprint and source.search_first_activity:
        # Inactive at the ledger's block, active now: the first footprint lies in between.
        first_state = await first_activity_from_state(rpc, wallet, ledger.block_number, block, by_code=is_contract)

    logs.sort(key=lambda entry: (int(entry["blockNumber"], 16), int(entry["logIndex"], 16)))
    transfers, interactions = classify_logs(wallet, logs)
    ledger.fold(transfers, interactions)
    ledger.advance(
        AccountState(
            address=wallet,
            block_number=block,
            from_block=ledger.from_block,
            balance_wei=balance_value,
            nonce=nonce_value,
            is_contract=is_contract,
            deployed_contracts=deployed,
            first_state_block=first_state,
            deployments_source=deployments_source,
        ),
        head_hash,
    )
    return ledger
