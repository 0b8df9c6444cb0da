"""The pipeline a worker runs for one job: profile → style → render → pin, each stage saved and resumable."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ipfs.pinning import CIDMismatch, Pinner
from ipfs.pinning.local import LocalStore
from jobs.store import Job, JobStore
from personalization.cache import CachedHistory
from personalization.orchestrator import Orchestration, Orchestrator
from personalization.profile import WalletProfile, build_profile
from personalization.registry import ContractRegistry
from personalization.style import StyleDNA, StyleParams
from pipeline.provenance import metadata_bytes, token_metadata
from render.errors import RenderError
from render.procedural import render_procedural_gated
from render.quality import QualityThresholds
from render.result import RenderResult

log = logging.getLogger("personamint.pipeline")


Renderer = Callable[[StyleDNA, StyleParams, int], Awaitable[tuple[RenderResult, dict[str, Any]]]]


def render_job(dna: StyleDNA, params: StyleParams, seed: int) -> RenderResult:
    """Render behind the quality gate; thresholds and attempts come from the DNA's [quality] table."""
    quality = dict(dna.raw.get("quality", {}))
    max_attempts = int(quality.pop("max_attempts", 3))
    return render_procedural_gated(
        params,
        dna.palettes[params.palette],
        seed,
        dna.width,
        dna.height,
        thresholds=QualityThresholds.from_mapping(quality),
        max_attempts=max_attempts,
    )


async def procedural_renderer(dna: StyleDNA, params: StyleParams, seed: int) -> tuple[RenderResult, dict[str, Any]]:
    """The default renderer, off the event loop; it has no extra provenance."""
    return await asyncio.to_thread(render_job, dna, params, seed), {}


@dataclass
class Personalizer:
    """A wallet's profile and its style in a collection: a job's first two stages, and a preview's."""

    history: CachedHistory
    registry: ContractRegistry
    orchestrator: Orchestrator

    async def profile(self, address: str, context: dict[str, Any]) -> WalletProfile:
        summary = await self.history.summary(address)
        return build_profile(summary, self.registry, context)

    async def style(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration:
        orchestration = await self.orchestrator.choose(profile, dna)
        dna.validate(orchestration.params)
        return orchestration

    async def aclose(self) -> None:
        close = getattr(self.orchestrator, "aclose", None)
        if close is not None:
            await close()


@dataclass
class PipelineDeps:
    """What the pipeline needs, built once per worker process."""

    jobs: JobStore
    personalizer: Personalizer
    collections: dict[str, StyleDNA]
    pinner: Pinner
    store: LocalStore
    renderer: Renderer = procedural_renderer
    on_stage: Callable[[str, float], None] | None = None  # (stage, seconds) as each one completes


class Pipeline:
    def __init__(self, deps: PipelineDeps) -> None:
        self.deps = deps

    async def _stage(self, job: Job, status: str, stage: str, work: Any) -> dict[str, Any]:
        """Run a stage unless its output is saved; save output and timing when it completes."""
        saved = job.stages.get(stage)
        if saved is not None:
            return saved
        await self.deps.jobs.set_status(job.id, status)
        started = time.perf_counter()
        output: dict[str, Any] = await work()
        seconds = time.perf_counter() - started
        await self.deps.jobs.save_stage(job.id, stage, output, seconds)
        job.stages[stage] = output
        job.timings[stage] = seconds
        if self.deps.on_stage is not None:
            self.deps.on_stage(stage, seconds)
        return output

    async def run(self, job: Job) -> Job:
        """Advance a job to 'minting'; the minter takes it from there."""
        dna = self.deps.collections[job.collection]

        async def profile_stage() -> dict[str, Any]:
            return (await self.deps.personalizer.profile(job.recipient, job.context)).to_dict()

        profile_out = await self._stage(job, "profiling", "profile", profile_stage)
        profile = WalletProfile.from_dict(profile_out)

        async def style_stage() -> dict[str, Any]:
            orchestration = await self.deps.personalizer.style(profile, dna)
            return {
                "params": orchestration.params.to_dict(),
                "orchestrator": orchestration.orchestrator,
                "persona": orchestration.persona,
                "provenance": orchestration.provenance,
            }

        style_out = await self._stage(job, "styling", "style", style_stage)
        orchestration = Orchestration(
            params=StyleParams.from_dict(style_out["params"]),
            orchestrator=style_out["orchestrator"],
            persona=style_out["persona"],
            provenance=style_out["provenance"],
        )

        async def render_stage() -> dict[str, Any]:
            result, extra = await self.deps.renderer(dna, orchestration.params, job.seed)
            # The bytes go into the local content-addressed store at once: a crash after this
            # point resumes from the CID and never re-renders (diffusion is not bit-exact).
            image_cid = await self.deps.store.pin(result.png, content_type="image/png")
            return {
                "image_cid": image_cid,
                "renderer": result.renderer,
                "renderer_version": result.renderer_version,
                "seed": result.seed,
                "attempts": result.attempts,
                "width": result.width,
                "height": result.height,
                "file_sha256": result.file_sha256,
                "pixel_sha256": result.pixel_sha256,
                "synth_seconds": result.synth_seconds,
                "encode_seconds": result.encode_seconds,
                **({"diffusion": extra} if extra else {}),
            }

        render_out = await self._stage(job, "rendering", "render", render_stage)

        async def pin_stage() -> dict[str, Any]:
            stored = await self.deps.store.get(render_out["image_cid"])
            if stored is None:
                raise RenderError(f"rendered image {render_out['image_cid']} is missing from the local store")
            image_cid = await self.deps.pinner.pin(stored.data, content_type="image/png")
            if image_cid != render_out["image_cid"]:
                raise CIDMismatch(render_out["image_cid"], image_cid)
            metadata = token_metadata(
                dna=dna,
                profile=profile,
                orchestration=orchestration,
                render=render_out,
                image_cid=image_cid,
                edition=job.edition,
                base_seed=job.seed,
                recipient=job.recipient,
                request_id=job.request_id,
            )
            metadata_cid = await self.deps.pinner.pin(metadata_bytes(metadata), content_type="application/json")
            return {
                "image_cid": image_cid,
                "metadata_cid": metadata_cid,
                "token_uri": f"ipfs://{metadata_cid}",
                "image_uri": f"ipfs://{image_cid}",
            }

        await self._stage(job, "pinning", "pin", pin_stage)
        return job
