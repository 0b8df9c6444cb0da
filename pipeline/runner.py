"""The pipeline a worker runs for one job: profile → style → render → pin, each stage saved and resumable."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ipfs.pinning import CIDMismatch, Pinner
from ipfs.pinning.local import LocalStore
from jobs.model import Job, PinStage, RenderStage, Stage, StageOutput
from jobs.store import JobStore
from personalization.cache import CachedHistory
from personalization.orchestrator import Orchestration, Orchestrator
from personalization.profile import WalletProfile, build_profile
from personalization.registry import ContractRegistry
from personalization.style import StyleDNA
from pipeline.provenance import metadata_bytes, token_metadata
from render.errors import RenderError
from render.renderer import Renderer
from render.renderer.procedural import ProceduralRenderer

log = logging.getLogger("personamint.pipeline")


Output = TypeVar("Output", bound=StageOutput)


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
    renderer: Renderer = field(default_factory=ProceduralRenderer)
    on_stage: Callable[[str, float], None] | None = None  # (stage, seconds) as each one completes


class Pipeline:
    def __init__(self, deps: PipelineDeps) -> None:
        self.deps = deps

    async def _stage(
        self, job: Job, stage: Stage, saved: Output | None, work: Callable[[], Awaitable[Output]]
    ) -> Output:
        """Run a stage unless its output is saved; save output and timing when it completes."""
        if saved is not None:
            return saved
        await self.deps.jobs.set_status(job.id, stage.status)
        started = time.perf_counter()
        output = await work()
        seconds = time.perf_counter() - started
        await self.deps.jobs.save_stage(job.id, output, seconds)
        job.record(output, seconds)
        if self.deps.on_stage is not None:
            self.deps.on_stage(stage, seconds)
        return output

    async def run(self, job: Job) -> Job:
        """Advance a job to 'minting'; the minter takes it from there."""
        dna = self.deps.collections[job.collection]

        async def profile_stage() -> WalletProfile:
            return await self.deps.personalizer.profile(job.recipient, job.context)

        profile = await self._stage(job, Stage.PROFILE, job.profile, profile_stage)

        async def style_stage() -> Orchestration:
            return await self.deps.personalizer.style(profile, dna)

        orchestration = await self._stage(job, Stage.STYLE, job.style, style_stage)

        async def render_stage() -> RenderStage:
            rendered = await self.deps.renderer.render(dna, orchestration.params, job.seed)
            result = rendered.result
            # The bytes go into the local content-addressed store at once: a crash after this
            # point resumes from the CID and never re-renders (diffusion is not bit-exact).
            image_cid = await self.deps.store.pin(result.png, content_type="image/png")
            return RenderStage(
                image_cid=image_cid,
                renderer=result.renderer,
                renderer_version=result.renderer_version,
                seed=result.seed,
                attempts=result.attempts,
                width=result.width,
                height=result.height,
                file_sha256=result.file_sha256,
                pixel_sha256=result.pixel_sha256,
                synth_seconds=result.synth_seconds,
                encode_seconds=result.encode_seconds,
                diffusion=dict(rendered.provenance) if rendered.provenance else None,
            )

        render = await self._stage(job, Stage.RENDER, job.render, render_stage)

        async def pin_stage() -> PinStage:
            stored = await self.deps.store.get(render.image_cid)
            if stored is None:
                raise RenderError(f"rendered image {render.image_cid} is missing from the local store")
            image_cid = await self.deps.pinner.pin(stored.data, content_type="image/png")
            if image_cid != render.image_cid:
                raise CIDMismatch(render.image_cid, image_cid)
            metadata = token_metadata(
                dna=dna,
                profile=profile,
                orchestration=orchestration,
                render=render,
                image_cid=image_cid,
                edition=job.edition,
                base_seed=job.seed,
                recipient=job.recipient,
                request_id=job.request_id,
            )
            metadata_cid = await self.deps.pinner.pin(metadata_bytes(metadata), content_type="application/json")
            return PinStage(
                image_cid=image_cid,
                metadata_cid=metadata_cid,
                token_uri=f"ipfs://{metadata_cid}",
                image_uri=f"ipfs://{image_cid}",
            )

        await self._stage(job, Stage.PIN, job.pin, pin_stage)
        return job
