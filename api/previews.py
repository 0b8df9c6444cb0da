"""Previews and profiles: the pipeline's profile → style → render steps without pinning or minting.

A preview renders with edition = the recipient's current counter and seed = derive_seed(…), the
values the wallet's next accepted mint will get, so the image is the one that mint produces
(as long as the wallet's on-chain history does not change in between). A preview is a
`preview_job` on the preview queue (`pm-preview`, apart from the mints' pipeline queue): a worker
profiles, styles and renders it with the personalizer and renderer mints get (a GPU one
included), so the API process never scans a history or renders for a preview: a flood of them
costs its event loop an enqueue each, and the previewer runs at the lowest CPU priority.
`GET /v1/profiles/{address}` still profiles in the API (no render; the same scan budget).
Results are cached in Redis; the PNG is served from an unguessable, expiring capability URL.

What a tenant can make the service hold is bounded: previews rendering or queued per tenant
(`too_many_previews`), and uncached wallet history scans per tenant per minute (GCRA,
`history_scan_rate_limited`); a cached answer costs neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from redis.asyncio import Redis
from saq import Queue
from saq.queue.base import JobError

from api.errors import LIBRARY_CODES, ApiError, rate_limited
from api.schemas import ProfileView
from config.chains import DEFAULT_CHAIN
from jobs import lua
from jobs.codec import decode_output
from jobs.ids import derive_seed
from jobs.keys import (
    edition_key,
    history_scan_bucket,
    preview_image_key,
    preview_key,
    preview_snapshot_key,
    previews_in_flight_key,
    style_caps_key,
)
from jobs.model import Stage
from jobs.ratelimit import Limit, RateLimiter
from personalization.orchestrator import Orchestration
from personalization.profile import WalletProfile
from personalization.style import StyleDNA, canonical_json
from pipeline.provenance import token_words
from pipeline.runner import Personalizer

_HIDDEN_PROFILE_FIELDS = ("address", "chain_id", "context")


def profile_view(profile: WalletProfile) -> dict[str, Any]:
    return {k: v for k, v in profile.to_dict().items() if k not in _HIDDEN_PROFILE_FIELDS}


class PreviewFailure(TypedDict):
    """A library error a worker met making a preview: its stable code and message."""

    code: str
    message: str


class RenderedPreview(TypedDict, total=False):
    """What a worker's `preview_job` answers (the PNG itself waits in Redis under `preview_image_key`)."""

    persona: str
    style: dict[str, Any]
    profile: dict[str, Any]  # WalletProfile.to_dict()
    block_number: int
    width: int
    height: int
    pixel_sha256: str
    image_sha256: str
    renderer: str
    failed: PreviewFailure  # instead of the rest: what went wrong


@dataclass(frozen=True)
class PreviewSnapshot:
    """A preview's inputs, saved by the worker that made it: a mint with its id gets exactly this."""

    collection: str
    recipient: str
    context: dict[str, Any]
    edition: int
    seed: int
    profile: WalletProfile
    style: Orchestration


@dataclass
class PreviewDeps:
    redis: Redis
    personalizer: Personalizer
    collections: dict[str, StyleDNA]
    render_queue: Queue  # the preview queue: workers run `preview_job` there
    render_timeout_s: float
    ttl_s: int
    concurrency: int
    limiter: RateLimiter
    scan_limit: Limit  # uncached history scans per tenant
    tenant_in_flight: int  # previews one tenant may have rendering or queued
    chains: Mapping[str, str] = field(default_factory=dict)  # collection id → its chain's route key


class PreviewService:
    def __init__(self, deps: PreviewDeps) -> None:
        self.deps = deps
        self._renders = asyncio.Semaphore(deps.concurrency)
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._take_slot = lua.register(deps.redis, "preview_slot")
        # A slot outlives the longest preview (history, style, queue wait, render), then lapses.
        self._slot_lapse_ms = int((2 * deps.render_timeout_s + 60) * 1000)

    async def charge_scan(self, tenant: str) -> None:
        """Charge the tenant's budget of uncached history scans; 429 when it is spent."""
        decision = await self.deps.limiter.hit((history_scan_bucket(tenant), self.deps.scan_limit))
        if not decision.allowed:
            raise rate_limited(
                "history_scan_rate_limited",
                "too many profiles of new wallets for this tenant; retry later (cached ones are free)",
                decision,
            )

    @contextlib.asynccontextmanager
    async def in_flight(self, tenant: str) -> AsyncIterator[None]:
        """One of the tenant's in-flight preview slots for the body's duration; 429 when all are held."""
        key = previews_in_flight_key(tenant)
        slot = secrets.token_hex(8)
        if not await self._take_slot(keys=[key], args=[slot, self.deps.tenant_in_flight, self._slot_lapse_ms]):
            raise ApiError(
                429,
                "too_many_previews",
                f"this tenant already has {self.deps.tenant_in_flight} previews in flight; retry when one ends",
                headers={"Retry-After": "2"},
                limit=self.deps.tenant_in_flight,
            )
        try:
            yield
        finally:
            await self.deps.redis.zrem(key, slot)

    async def _once(self, key: str, compute: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Concurrent identical requests share one computation (per process)."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the waiters (if any) re-raise it
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(result)
        return result

    async def head(self, collection: str) -> int:
        """The head of the collection's chain, as the history reads it."""
        return await self.deps.personalizer.head(self.deps.chains.get(collection, DEFAULT_CHAIN))

    async def profile_and_style(self, address: str, collection: str, tenant: str, block: int) -> ProfileView:
        """An uncached profile at `block`: charged to the tenant's history-scan budget."""
        await self.charge_scan(tenant)
        dna = self.deps.collections[collection]
        # No cache of our own: the personalizer's history cache keys summaries by block, as the worker's does.
        chain = self.deps.chains.get(collection, DEFAULT_CHAIN)
        profile = await self.deps.personalizer.profile(address, {}, chain=chain, block=block)
        orchestration = await self.deps.personalizer.style(profile, dna)
        return ProfileView(
            address=address,
            collection=collection,
            block_number=profile.block_number,
            profile=profile_view(profile),
            persona=orchestration.persona,
            style=orchestration.params.to_dict(),
        )

    async def preview(self, recipient: str, collection: str, context: dict[str, Any], tenant: str) -> dict[str, Any]:
        """The next mint's image for this wallet; `cached` says whether it was rendered before.

        An uncached preview holds one of the tenant's in-flight slots and is charged to its
        history-scan budget; requests joining one already computing (in this process) hold neither.
        """
        redis = self.deps.redis
        raw_edition = await redis.get(edition_key(collection, recipient))
        edition = int(raw_edition) if raw_edition is not None else 0
        context_hash = hashlib.sha256(canonical_json(context)).hexdigest()[:16]
        # Block-true: the wallet's profile at the head (a newer head folds in only its new blocks)
        # keys the answer, so new activity is a new preview and a head that changed nothing for
        # this wallet is the same image. The worker profiles at that same block.
        chain = self.deps.chains.get(collection, DEFAULT_CHAIN)
        block = await self.deps.personalizer.head(chain)
        charged = False
        if not await self.deps.personalizer.history_for(chain).known(recipient, block):
            await self.charge_scan(tenant)  # a wallet read cold is the budget's cost
            charged = True
        profile = await self.deps.personalizer.profile(recipient, context, chain=chain, block=block)
        answer_of: dict[str, Any] = {"features": profile.features()}
        if self.deps.collections[collection].caps:
            # Rarity caps: what a mint would get depends on the collection's counts, so they key it too.
            counts = await redis.hgetall(style_caps_key(collection))
            answer_of["caps"] = sorted((k.decode() if isinstance(k, bytes) else k, int(v)) for k, v in counts.items())
        features = hashlib.sha256(canonical_json(answer_of)).hexdigest()[:24]
        cache_key = preview_key(collection, recipient, edition, context_hash, features)
        cached = await redis.get(cache_key)
        if cached is not None:
            return {**json.loads(cached), "cached": True}

        async def compute() -> dict[str, Any]:
            seed = derive_seed(collection, recipient, edition)
            preview_id = secrets.token_urlsafe(18)
            async with self._renders:
                # Profile, style and render all happen in a preview worker (processes/pipeline_worker.py).
                result = await self._render(collection, recipient, context, seed, preview_id, edition, block)
            profile = {k: v for k, v in result["profile"].items() if k not in _HIDDEN_PROFILE_FIELDS}
            name, description = await self._words(preview_id, collection, recipient, edition)
            view = {
                "preview_id": preview_id,
                "recipient": recipient,
                "collection": collection,
                "edition": edition,
                "seed": seed,
                "persona": result["persona"],
                "style": result["style"],
                "profile": profile,
                "block_number": result["block_number"],
                "width": result["width"],
                "height": result["height"],
                "pixel_sha256": result["pixel_sha256"],
                "image_sha256": result["image_sha256"],
                "image_url": f"/v1/previews/{preview_id}/image",
                "expires_at": time.time() + self.deps.ttl_s,
                "name": name,
                "description": description,
            }
            await redis.set(cache_key, json.dumps(view, sort_keys=True), ex=self.deps.ttl_s)
            return view

        if cache_key in self._inflight:  # joining a computation costs the tenant nothing
            return {**await self._once(cache_key, compute), "cached": False}
        async with self.in_flight(tenant):
            if not charged:
                await self.charge_scan(tenant)
            return {**await self._once(cache_key, compute), "cached": False}

    async def _render(
        self,
        collection: str,
        recipient: str,
        context: dict[str, Any],
        seed: int,
        preview_id: str,
        edition: int,
        block: int,
    ) -> RenderedPreview:
        """A worker profiles, styles and renders it (and stores the PNG); no worker within the deadline
        → a retryable 503; a library error there (the chain down) → its own problem, as if it were here."""
        timeout_s = self.deps.render_timeout_s
        try:
            result: RenderedPreview | None = await self.deps.render_queue.apply(
                "preview_job",
                timeout=timeout_s,  # SAQ: how long to wait, and the job's own timeout
                poll_interval=0.05,
                collection=collection,
                recipient=recipient,
                context=context,
                seed=seed,
                preview_id=preview_id,
                edition=edition,
                block=block,
                ttl_s=self.deps.ttl_s,
                retries=1,  # the caller retries, not the queue
                ttl=int(timeout_s) + 60,
            )
        except (TimeoutError, JobError):
            result = None
        if result is not None and "failed" in result:
            failed = result["failed"]
            mapping = LIBRARY_CODES.get(failed["code"])
            if mapping is not None:
                headers = {"Retry-After": str(mapping.retry_after_s)} if mapping.retry_after_s is not None else None
                raise ApiError(mapping.status, failed["code"], mapping.detail or failed["message"], headers=headers)
            result = None
        if result is None:
            raise ApiError(
                503,
                "preview_unavailable",
                "No render worker finished the preview in time; retry with the same Idempotency-Key.",
                headers={"Retry-After": "5"},
            )
        return result

    async def _words(self, preview_id: str, collection: str, recipient: str, edition: int) -> tuple[str, str]:
        """The name and description the mint with this preview's id gets, from the worker's saved style."""
        snapshot = await self.snapshot(preview_id)
        if snapshot is None:
            return "", ""
        dna = self.deps.collections[collection]
        return token_words(dna, snapshot.style, recipient, edition)

    async def snapshot(self, preview_id: str) -> PreviewSnapshot | None:
        """What the preview was made from, while it lives (None: unknown or expired)."""
        raw: Any = await self.deps.redis.hgetall(preview_snapshot_key(preview_id))
        if not raw or b"profile" not in raw:
            return None
        profile = decode_output(Stage.PROFILE, raw[b"profile"])
        style = decode_output(Stage.STYLE, raw[b"style"])
        assert isinstance(profile, WalletProfile)
        assert isinstance(style, Orchestration)
        return PreviewSnapshot(
            collection=raw[b"collection"].decode(),
            recipient=raw[b"recipient"].decode(),
            context=json.loads(raw[b"context"]),
            edition=int(raw[b"edition"]),
            seed=int(raw[b"seed"]),
            profile=profile,
            style=style,
        )

    async def image(self, preview_id: str) -> bytes | None:
        found: Any = await self.deps.redis.get(preview_image_key(preview_id))
        return bytes(found) if found is not None else None
