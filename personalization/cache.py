"""Wallet histories cached in Redis: summaries per (chain, address, block), and each wallet's ledger.

A repeat at the same block costs no RPC call (the summary). A newer head reads only the
blocks since the wallet's ledger was read and folds them in (personalization.incremental);
a reorg of the ledger's block, or a source that cannot read a range, reads cold.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from eth_utils.address import is_address, to_checksum_address

from personalization.errors import HistoryError
from personalization.history import HistorySource, RpcHistorySource
from personalization.incremental import advance_ledger, block_hash
from personalization.ledger import LEDGER_VERSION, Ledger, decode_ledger, encode_ledger, ledger_of
from personalization.summary import SUMMARY_VERSION, HistorySummary, decode_summary, encode_summary

log = logging.getLogger("personalization.cache")


class HistoryCache:
    """Redis keys `{prefix}:v{n}:{chain}:{source tag}:{address}:{block}` and `{prefix}:head:{chain}`.

    The head is cached for `head_ttl_s` (about a block time) so that a burst of requests
    for the same wallet shares one eth_blockNumber; a block number never changes its
    history, so summaries live for `ttl_s` only to bound memory.
    """

    def __init__(
        self,
        redis: Any,
        *,
        ttl_s: float = 3600.0,
        head_ttl_s: float = 2.0,
        ledger_ttl_s: float = 7 * 86400.0,
        prefix: str = "pm:history",
    ) -> None:
        self.redis = redis
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.head_ttl_ms = int(head_ttl_s * 1000)
        self.ledger_ttl_ms = max(1, int(ledger_ttl_s * 1000))
        self.prefix = prefix

    def key(self, chain_id: int, tag: str, address: str, block: int) -> str:
        return f"{self.prefix}:v{SUMMARY_VERSION}:{chain_id}:{tag}:{address.lower()}:{block}"

    async def get(self, chain_id: int, tag: str, address: str, block: int) -> HistorySummary | None:
        raw = await self.redis.get(self.key(chain_id, tag, address, block))
        if raw is None:
            return None
        try:
            return decode_summary(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # Written by another version: read the chain again and overwrite it.
            return None

    async def put(self, tag: str, summary: HistorySummary) -> None:
        key = self.key(summary.chain_id, tag, summary.address, summary.block_number)
        await self.redis.set(key, encode_summary(summary), px=self.ttl_ms)

    def ledger_key(self, chain_id: int, tag: str, address: str) -> str:
        return f"{self.prefix}:ledger:v{LEDGER_VERSION}:{chain_id}:{tag}:{address.lower()}"

    def origin_key(self, chain_id: int, tag: str) -> str:
        return f"{self.prefix}:origin:{chain_id}:{tag}"

    async def get_ledger(self, chain_id: int, tag: str, address: str) -> Ledger | None:
        raw = await self.redis.get(self.ledger_key(chain_id, tag, address))
        if raw is None:
            return None
        try:
            return decode_ledger(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    async def put_ledger(self, tag: str, ledger: Ledger) -> None:
        """Any ledger is true at its block, so a racing writer's older one only costs a longer next read."""
        key = self.ledger_key(ledger.chain_id, tag, ledger.address)
        await self.redis.set(key, encode_ledger(ledger), px=self.ledger_ttl_ms)

    async def origin(self, chain_id: int, tag: str, address: str, proposed: int) -> int:
        """The first block this deployment reads for the wallet: fixed at its first read, so a
        history window never slides as the chain grows (HSETNX; kept without expiry)."""
        key = self.origin_key(chain_id, tag)
        field = address.lower()
        await self.redis.hsetnx(key, field, proposed)
        raw = await self.redis.hget(key, field)
        return int(raw) if raw is not None else proposed

    async def head(self, chain_id: int) -> int | None:
        if self.head_ttl_ms <= 0:
            return None
        raw = await self.redis.get(f"{self.prefix}:head:{chain_id}")
        return int(raw) if raw is not None else None

    async def set_head(self, chain_id: int, block: int) -> None:
        if self.head_ttl_ms > 0:
            await self.redis.set(f"{self.prefix}:head:{chain_id}", str(block), px=self.head_ttl_ms)


class CachedHistory:
    """The history stage's entry point: head → cache → ledger → source, one read per key at a time.

    Without a cache (redis=None) it still coalesces concurrent requests for one key.
    """

    def __init__(self, source: HistorySource, cache: HistoryCache | None = None, *, recent_blocks: int = 50_000):
        self.source = source
        self.cache = cache
        self.recent_blocks = recent_blocks
        self._inflight: dict[str, asyncio.Future[HistorySummary]] = {}
        self.fetches = 0  # cold reads from the source (no ledger to extend)
        self.increments = 0  # ledgers extended to a newer head

    async def head(self, chain_id: int) -> int:
        if self.cache is not None and (cached := await self.cache.head(chain_id)) is not None:
            return cached
        block = await self.source.head()
        if self.cache is not None:
            await self.cache.set_head(chain_id, block)
        return block

    def _tag(self) -> str:
        """What besides (chain, address, block) decides an answer: the source's settings and the window."""
        return f"{self.source.cache_tag()}:r{self.recent_blocks}"

    async def known(self, address: str, block: int) -> bool:
        """Would a summary at `block` come without a cold read (cached, or a ledger to extend)?"""
        if self.cache is None or not is_address(address):
            return False
        wallet = to_checksum_address(address)
        chain_id = await self.source.chain_id()
        tag = self._tag()
        keys = [self.cache.key(chain_id, tag, wallet, block), self.cache.ledger_key(chain_id, tag, wallet)]
        return bool(await self.cache.redis.exists(*keys))

    async def summary(self, address: str, *, block: int | None = None) -> HistorySummary:
        """The wallet's summary at `block` (default: the head), from the cache when it holds it."""
        if not is_address(address):
            raise HistoryError(f"not an address: {address!r}")
        wallet = to_checksum_address(address)
        chain_id = await self.source.chain_id()
        if block is None:
            block = await self.head(chain_id)
        tag = self._tag()
        if self.cache is not None:
            hit = await self.cache.get(chain_id, tag, wallet, block)
            if hit is not None:
                return hit
        key = f"{chain_id}:{tag}:{wallet}:{block}"
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[HistorySummary] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            ledger = await self._ledger(chain_id, tag, wallet, block)
            summary = ledger.summary()
            if self.cache is not None:
                try:
                    await self.cache.put(tag, summary)
                    if ledger.block_hash:  # sources that read ranges only
                        await self.cache.put_ledger(tag, ledger)
                except Exception as exc:  # noqa: BLE001 - a cache that cannot be written is not a failed profile
                    log.warning("history cache write failed: %s", type(exc).__name__)
            future.set_result(summary)
            return summary
        except BaseException as exc:
            future.set_exception(exc)
            # Waiters get the exception; mark it retrieved so a lone request does not log it twice.
            future.exception()
            raise
        finally:
            del self._inflight[key]

    async def _ledger(self, chain_id: int, tag: str, wallet: str, block: int) -> Ledger:
        """The wallet's ledger at `block`: the stored one extended when it is older, else a cold read."""
        source = self.source
        if self.cache is not None and isinstance(source, RpcHistorySource):
            stored = await self.cache.get_ledger(chain_id, tag, wallet)
            if stored is not None and stored.block_number <= block:  # its key names the recent window
                extended = stored.block_number < block
                advanced = await advance_ledger(source, stored, block)  # folds into `stored`
                if advanced is not None:
                    self.increments += extended
                    return advanced
                log.info("history ledger of %s left the canonical chain: reading it cold", wallet)
        self.fetches += 1
        if isinstance(source, RpcHistorySource):
            start = max(0, block - source.max_depth + 1)
            if self.cache is not None:
                start = min(block, await self.cache.origin(chain_id, tag, wallet, start))
            history = await source.fetch(wallet, block=block, from_block=start)
            return ledger_of(history, block_hash=await block_hash(source, block), recent_blocks=self.recent_blocks)
        history = await source.fetch(wallet, block=block)
        return ledger_of(history, recent_blocks=self.recent_blocks)
