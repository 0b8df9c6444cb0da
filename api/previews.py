"""Previews and profiles: the pipeline's profile → style → render steps without pinning or minting.

A preview renders with edition = the recipient's current counter and seed = derive_seed(…), the
values the wallet's next accepted mint will get, so the image is the one that mint produces
(as long as the wallet's on-chain history does not change in between). Results are cached in
Redis; the PNG is served from an unguessable, expiring capability URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from api.jobs import derive_seed
from api.pipeline import render_job
from personalization.history import fetch_history
from personalization.orchestrator import Orchestration, Orchestrator
from personalization.profile import WalletProfile, build_profile
from personalization.registry import ContractRegistry
from personalization.rpc import JsonRpcClient
from personalization.style import StyleDNA, canonical_json

_HIDDEN_PROFILE_FIELDS = ("address", "chain_id", "context")


def profile_view(profile: WalletProfile) -> dict[str, Any]:
    return {k: v for k, v in profile.to_dict().items() if k not in _HIDDEN_PROFILE_FIELDS}


@dataclass
class PreviewDeps:
    redis: Redis
    rpc: JsonRpcClient
    registry: ContractRegistry
    collections: dict[str, StyleDNA]
    orchestrator: Orchestrator
    history_max_depth: int
    history_window: int
    ttl_s: int
    concurrency: int


class PreviewService:
    def __init__(self, deps: PreviewDeps) -> None:
        self.deps = deps
        self._renders = asyncio.Semaphore(deps.concurrency)
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def _once(self, key: str, compute: Any) -> dict[str, Any]:
        """Concurrent identical requests share one computation (per process)."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result: dict[str, Any] = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the waiters (if any) re-raise it
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(result)
        return result

    async def profile(self, address: str, context: dict[str, Any]) -> WalletProfile:
        context_hash = hashlib.sha256(canonical_json(context)).hexdigest()[:16]
        cache_key = f"pm:cache:profile:{address.lower()}:{context_hash}"
        cached = await self.deps.redis.get(cache_key)
        if cached is not None:
            return WalletProfile.from_dict(json.loads(cached))

        async def compute() -> dict[str, Any]:
            history = await fetch_history(
                self.deps.rpc,
                address,
                max_depth=self.deps.history_max_depth,
                window=self.deps.history_window,
            )
            profile = build_profile(history, self.deps.registry, context).to_dict()
            await self.deps.redis.set(cache_key, json.dumps(profile, sort_keys=True), ex=self.deps.ttl_s)
            return profile

        return WalletProfile.from_dict(await self._once(cache_key, compute))

    async def style(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration:
        orchestration = await self.deps.orchestrator.choose(profile, dna)
        dna.validate(orchestration.params)
        return orchestration

    async def profile_and_style(self, address: str, collection: str) -> dict[str, Any]:
        dna = self.deps.collections[collection]
        profile = await self.profile(address, {})
        orchestration = await self.style(profile, dna)
        return {
            "address": address,
            "collection": collection,
            "block_number": profile.block_number,
            "profile": profile_view(profile),
            "persona": orchestration.persona,
            "style": orchestration.params.to_dict(),
        }

    async def preview(self, recipient: str, collection: str, context: dict[str, Any]) -> dict[str, Any]:
        """The next mint's image for this wallet; (view, cached?)."""
        redis = self.deps.redis
        raw_edition = await redis.get(f"pm:edition:{collection}:{recipient.lower()}")
        edition = int(raw_edition) if raw_edition is not None else 0
        context_hash = hashlib.sha256(canonical_json(context)).hexdigest()[:16]
        cache_key = f"pm:cache:preview:{collection}:{recipient.lower()}:{edition}:{context_hash}"
        cached = await redis.get(cache_key)
        if cached is not None:
            return {**json.loads(cached), "cached": True}

        async def compute() -> dict[str, Any]:
            dna = self.deps.collections[collection]
            profile = await self.profile(recipient, context)
            orchestration = await self.style(profile, dna)
            seed = derive_seed(collection, recipient, edition)
            async with self._renders:
                result = await asyncio.to_thread(render_job, dna, orchestration.params, seed)
            preview_id = secrets.token_urlsafe(18)
            view = {
                "preview_id": preview_id,
                "recipient": recipient,
                "collection": collection,
                "edition": edition,
                "seed": seed,
                "persona": orchestration.persona,
                "style": orchestration.params.to_dict(),
                "profile": profile_view(profile),
                "block_number": profile.block_number,
                "width": result.width,
                "height": result.height,
                "pixel_sha256": result.pixel_sha256,
                "image_sha256": result.file_sha256,
                "image_url": f"/v1/previews/{preview_id}/image",
                "expires_at": time.time() + self.deps.ttl_s,
            }
            async with redis.pipeline(transaction=True) as pipe:
                pipe.set(f"pm:cache:preview-image:{preview_id}", result.png, ex=self.deps.ttl_s)
                pipe.set(cache_key, json.dumps(view, sort_keys=True), ex=self.deps.ttl_s)
                await pipe.execute()
            return view

        return {**await self._once(cache_key, compute), "cached": False}

    async def image(self, preview_id: str) -> bytes | None:
        found: Any = await self.deps.redis.get(f"pm:cache:preview-image:{preview_id}")
        return bytes(found) if found is not None else None
