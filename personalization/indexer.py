"""An indexer-backed HistorySource: Alchemy's `alchemy_getAssetTransfers` instead of scanning logs.

Account state (balance, nonce, code, deployments, first activity) still comes from
plain JSON-RPC on the same endpoint. The transfers API reports token movements only,
so protocol events that are not transfers (interactions) are not seen through it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from chain.rpc import JsonRpc
from personalization.errors import HistoryError
from personalization.history import (
    Direction,
    JsonRpcSourceBase,
    Standard,
    Transfer,
    WalletHistory,
    read_account_state,
)

CATEGORIES: tuple[Standard, ...] = ("erc20", "erc721", "erc1155")
MAX_PAGE = 1000  # Alchemy's largest maxCount
MAX_PAGES = 1000  # a million transfers per direction: past this the wallet is an exchange, not a person


def _hex_int(value: Any) -> int | None:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _log_index(unique_id: Any) -> int:
    # uniqueId is "<tx hash>:log:<log index>" for token transfers.
    if isinstance(unique_id, str) and ":log:" in unique_id:
        index = unique_id.rsplit(":log:", 1)[1]
        if index.isascii() and index.isdigit():  # not ², which int() refuses
            return int(index)
    return -1


def transfers_from_alchemy(wallet: str, entries: list[dict[str, Any]]) -> list[Transfer]:
    """Map asset-transfer entries to Transfers; entries of other categories or bad shape are skipped."""
    transfers: list[Transfer] = []
    seen: set[str] = set()
    for entry in entries:
        category = entry.get("category")
        if category not in CATEGORIES:
            continue
        unique = str(entry.get("uniqueId") or f"{entry.get('hash')}:{len(seen)}")
        if unique in seen:
            continue
        seen.add(unique)
        raw_contract = entry.get("rawContract") or {}
        contract, sender, receiver = raw_contract.get("address"), entry.get("from"), entry.get("to")
        block = _hex_int(entry.get("blockNum"))
        if block is None or not all(isinstance(a, str) and is_address(a) for a in (contract, sender, receiver)):
            continue
        sender, receiver = to_checksum_address(sender), to_checksum_address(receiver)
        direction: Direction
        if sender == wallet and receiver == wallet:
            direction, counterparty = "self", wallet
        elif receiver == wallet:
            direction, counterparty = "in", sender
        elif sender == wallet:
            direction, counterparty = "out", receiver
        else:
            continue
        common = {
            "standard": category,
            "direction": direction,
            "contract": to_checksum_address(contract),
            "counterparty": counterparty,
            "block_number": block,
            "tx_hash": str(entry.get("hash", "")),
            "log_index": _log_index(entry.get("uniqueId")),
        }
        if category == "erc20":
            transfers.append(Transfer(token_id=None, amount=_hex_int(raw_contract.get("value")) or 0, **common))
        elif category == "erc721":
            token_id = _hex_int(entry.get("erc721TokenId") or entry.get("tokenId"))
            transfers.append(Transfer(token_id=token_id, amount=1, **common))
        else:
            for item in entry.get("erc1155Metadata") or []:
                token_id = _hex_int(item.get("tokenId"))
                amount = _hex_int(item.get("value")) or 0
                transfers.append(Transfer(token_id=token_id, amount=amount, **common))
    return transfers


class AlchemyHistorySource(JsonRpcSourceBase):
    """Histories from an endpoint that speaks `alchemy_getAssetTransfers` (plus plain JSON-RPC)."""

    name = "alchemy"

    def __init__(
        self,
        rpc: JsonRpc,
        *,
        max_depth: int = 2_000_000,
        page_size: int = MAX_PAGE,
        deployed_scan_limit: int | None = None,
        search_first_activity: bool = True,
    ) -> None:
        self.rpc = rpc
        self.max_depth = max_depth
        self.page_size = max(1, min(MAX_PAGE, page_size))
        self.deployed_scan_limit = deployed_scan_limit
        self.search_first_activity = search_first_activity
        self._chain_id: int | None = None

    async def _pages(self, side: str, wallet: str, from_block: int, block: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        page_key: str | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {
                "fromBlock": hex(from_block),
                "toBlock": hex(block),
                side: wallet,
                "category": list(CATEGORIES),
                "withMetadata": False,
                "excludeZeroValue": False,
                "maxCount": hex(self.page_size),
                "order": "asc",
            }
            if page_key:
                query["pageKey"] = page_key
            result = await self.rpc.call("alchemy_getAssetTransfers", [query])
            if not isinstance(result, dict) or not isinstance(result.get("transfers"), list):
                raise HistoryError("alchemy_getAssetTransfers: malformed result")
            entries.extend(e for e in result["transfers"] if isinstance(e, dict))
            page_key = result.get("pageKey")
            if not page_key:
                return entries
        raise HistoryError(f"alchemy_getAssetTransfers: more than {MAX_PAGES} pages for {wallet}")

    async def fetch(self, address: str, *, block: int) -> WalletHistory:
        wallet = to_checksum_address(address)
        state = await read_account_state(
            self.rpc,
            wallet,
            block=block,
            max_depth=self.max_depth,
            deployed_scan_limit=self.deployed_scan_limit,
            search_first_activity=self.search_first_activity,
        )
        outgoing, incoming = await asyncio.gather(
            self._pages("fromAddress", wallet, state.from_block, block),
            self._pages("toAddress", wallet, state.from_block, block),
        )
        transfers = transfers_from_alchemy(wallet, outgoing + incoming)
        transfers.sort(key=lambda t: (t.block_number, t.log_index))
        return state.with_activity(await self.chain_id(), transfers, [], source=self.name)
