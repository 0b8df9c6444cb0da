"""Wallet history summaries cached in Redis per (chain, address, block): a repeat costs no RPC call."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from eth_utils.address import is_address, to_checksum_address

from personalization.errors import HistoryError
from personalization.history import HistorySource
from personalization.summary import SUMMARY_VERSION, HistorySummary, decode_summary, encode_summary, summarize

log = logging.getLogger("personalization.cache")


class HistoryCache:
    """Redis keys `{prefix}:v{n}:{chain}:{source tag}:{address}:{block}` and `{prefix}:head:{chain}`.

    The head is cached for `head_ttl_s` (about a block time) so that a burst of requests
    for the same wallet shares one eth_blockNumber; a block number never changes its
    history, so summaries live for `ttl_s` only to bound memory.
    """

    def __init__(
        self, redis: Any, *, ttl_s: float = 3600.0, head_ttl_s: float = 2.0, prefix: str = "pm:history"
    ) -> None:
        self.redis = redis
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.head_ttl_ms = int(head_ttl_s * 1000)
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

    async def head(self, chain_id: int) -> int | None:
        if self.head_ttl_ms <= 0:
            return None
        raw = await self.redis.get(f"{self.prefix}:head:{chain_id}")
        return int(raw) if raw is not None else None

    async def set_head(self, chain_id: int, block: int) -> None:
        if self.head_ttl_ms > 0:
            await self.redis.set(f"{self.prefix}:head:{chain_id}", str(block), px=self.head_ttl_ms)


class CachedHistory:
    """The history stage's entry point: head → cache → source, one fetch per key at a time.

    Without a cache (redis=None) it still coalesces concurrent requests for one key.
    """

    def __init__(self, source: HistorySource, cache: HistoryCache | None = None, *, recent_blocks: int = 50_000):
        self.source = source
        self.cache = cache
        self.recent_blocks = recent_blocks
        self._inflight: dict[str, asyncio.Future[HistorySummary]] = {}
        self.fetches = 0  # histories read from the source (cache misses)

    async def head(self, chain_id: int) -> int:
        if self.cache is not None and (cached := await self.cache.head(chain_id)) is not None:
            return cached
        block = await self.source.head()
        if self.cache is not None:
            await self.cache.set_head(chain_id, block)
        return block

    async def summary(self, address: str, *, block: int | None = None) -> HistorySummary:
        """The wallet's summary at `block` (default: the head), from the cache when it holds it."""
        if not is_address(address):
            raise HistoryError(f"not an address: {address!r}")
        wallet = to_checksum_address(address)
        chain_id = await self.source.chain_id()
        if block is None:
            block = await self.head(chain_id)
        tag = f"{self.source.cache_tag()}:r{self.recent_blocks}"
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
            self.fetches += 1
            history = await self.source.fetch(wallet, block=block)
            summary = summarize(history, recent_blocks=self.recent_blocks)
            if self.cache is not None:
                try:
                    await self.cache.put(tag, summary)
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
