"""The pipeline a worker runs for one job: profile → style → render → pin, each stage saved and resumable."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from config.chains import DEFAULT_CHAIN
from ipfs.pinning import Pinner
from jobs.model import Job, PinStage, RenderStage, Stage, StageOutput
from jobs.store import JobStore
from jobs.style_caps import StyleCapLedger
from personalization.cache import CachedHistory
from personalization.caps import Rankings
from personalization.caps_apply import rank, with_caps
from personalization.orchestrator import Orchestration, Orchestrator
from personalization.orchestrator.rule_based import ranked_choices
from personalization.profile import WalletProfile, build_profile
from personalization.registry import ContractRegistry
from personalization.style import StyleDNA
from pipeline.provenance import metadata_bytes, token_metadata
from render.errors import RenderError
from render.renderer import Rendered, Renderer
from render.renderer.procedural import ProceduralRenderer

log = logging.getLogger("personamint.pipeline")


Output = TypeVar("Output", bound=StageOutput)

# Reserves (or peeks at) capped choices: a ranking per choice field in, the value taken per field out.
TakeChoices = Callable[[Rankings], Awaitable[Mapping[str, str]]]


@dataclass
class Personalizer:
    """A wallet's profile and its style in a collection: a job's first two stages, and a preview's."""

    history: CachedHistory
    """The default chain's history."""
    registry: ContractRegistry
    orchestrator: Orchestrator
    chain_histories: Mapping[str, CachedHistory] = field(default_factory=dict)
    """Every other chain's, by route key (its chain id): a collection's profile reads its own chain."""

    def history_for(self, chain: str) -> CachedHistory:
        return self.history if chain == DEFAULT_CHAIN else self.chain_histories[chain]

    async def profile(
        self, address: str, context: dict[str, Any], *, chain: str = DEFAULT_CHAIN, block: int | None = None
    ) -> WalletProfile:
        """The wallet's profile from `chain`'s history (a route key: `default` or a chain id), at
        `block` (default: the head)."""
        summary = await self.history_for(chain).summary(address, block=block)
        return build_profile(summary, self.registry, context)

    async def head(self, chain: str = DEFAULT_CHAIN) -> int:
        """`chain`'s head block as the history reads it (cached for about a block)."""
        history = self.history_for(chain)
        return await history.head(await history.source.chain_id())

    async def style(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration:
        orchestration = await self.orchestrator.choose(profile, dna)
        dna.validate(orchestration.params)
        return orchestration

    async def capped_style(self, profile: WalletProfile, dna: StyleDNA, take: TakeChoices) -> Orchestration:
        """The style, then the collection's rarity caps: `take` gets a ranking per choice field (the
        orchestrator's choice first, then the rule-based ranking: any orchestrator's next-best) and
        answers the values it reserved (a job) or would reserve now (a preview)."""
        orchestration = await self.style(profile, dna)
        if not dna.caps:
            return orchestration
        rankings = rank(orchestration.params, ranked_choices(profile, dna))
        capped = with_caps(orchestration, rankings, await take(rankings), dna.caps)
        dna.validate(capped.params)
        return capped

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
    pinner: Pinner  # this machine's store + the remote pinners: where stage outputs travel between machines
    renderer: Renderer = field(default_factory=ProceduralRenderer)
    on_stage: Callable[[str, float], None] | None = None  # (stage, seconds) as each one completes
    chains: Mapping[str, str] = field(default_factory=dict)  # collection id → its chain's route key


class Pipeline:
    def __init__(self, deps: PipelineDeps) -> None:
        self.deps = deps
        # The collections' rarity caps, on the job store's Redis (only collections with caps use it).
        self.caps = StyleCapLedger(deps.jobs.redis)

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
        log.info("job %s: stage %s done in %.3f s", job.id, stage, seconds)
        if self.deps.on_stage is not None:
            self.deps.on_stage(stage, seconds)
        return output

    async def run(self, job: Job) -> Job:
        """Advance a job to 'minting'; the minter takes it from there."""
        dna = self.deps.collections[job.collection]

        async def profile_stage() -> WalletProfile:
            chain = self.deps.chains.get(job.collection, DEFAULT_CHAIN)
            return await self.deps.personalizer.profile(job.recipient, job.context, chain=chain)

        profile = await self._stage(job, Stage.PROFILE, job.profile, profile_stage)

        async def reserve(rankings: Rankings) -> Mapping[str, str]:
            got = await self.caps.reserve(job.id, dna, rankings)
            if got is None:  # the job ended meanwhile: its style is not saved (save_stage refuses)
                log.info("job %s ended before its rarity caps were reserved", job.id)
                return {name: ranking[0] for name, ranking in rankings.items()}
            return got

        async def style_stage() -> Orchestration:
            # Capped choices are reserved here, once per job, and the saved style holds them: a
            # retry resumes with the same params (or, crashing before the save, the same reservation).
            return await self.deps.personalizer.capped_style(profile, dna, reserve)

        orchestration = await self._stage(job, Stage.STYLE, job.style, style_stage)

        async def render_stage() -> RenderStage:
            rendered = await self.deps.renderer.render(dna, orchestration.params, job.seed)
            # The bytes go to the deployment's pinners at once (this machine's store and the remote
            # ones every machine reaches): a crash after this point resumes from the CID on any
            # worker, and never re-renders while the bytes can be found (diffusion is not bit-exact).
            image_cid = await self.deps.pinner.pin(rendered.result.png, content_type="image/png")
            return render_stage_of(rendered, image_cid)

        render = await self._stage(job, Stage.RENDER, job.render, render_stage)

        async def pin_stage() -> PinStage:
            pinned = await self._image_pinned(job, dna, orchestration, render)
            image_cid = pinned.image_cid
            metadata = token_metadata(
                dna=dna,
                profile=profile,
                orchestration=orchestration,
                render=pinned,
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

    async def _image_pinned(
        self, job: Job, dna: StyleDNA, orchestration: Orchestration, render: RenderStage
    ) -> RenderStage:
        """The render stage, once its image's bytes are found in the deployment's pinners.

        Normally they are on this machine already or on a remote pinner (read through and
        checked against the CID). When no pinner has them (a worker with its own disk died
        after rendering, and no remote pinner is configured), the image is rendered again: it
        must have the recorded pixels, and is pinned again (the file's CID can differ if
        another zlib encoded it; the new render stage is saved then).
        """
        if await self.deps.pinner.get(render.image_cid) is not None:
            return render
        log.warning("job %s: rendered image %s not found in any pinner; rendering it again", job.id, render.image_cid)
        started = time.perf_counter()
        rendered = await self.deps.renderer.render(dna, orchestration.params, job.seed)
        if rendered.result.pixel_sha256 != render.pixel_sha256:
            raise RenderError(
                f"rendering job {job.id} again gave other pixels ({rendered.result.pixel_sha256[:12]}… "
                f"instead of {render.pixel_sha256[:12]}…); renderer {rendered.result.renderer} "
                f"{rendered.result.renderer_version} (recorded {render.renderer} {render.renderer_version})"
            )
        image_cid = await self.deps.pinner.pin(rendered.result.png, content_type="image/png")
        if image_cid == render.image_cid:
            return render
        again = render_stage_of(rendered, image_cid)
        seconds = time.perf_counter() - started
        await self.deps.jobs.save_stage(job.id, again, seconds)
        job.record(again, seconds)
        return again


def render_stage_of(rendered: Rendered, image_cid: str) -> RenderStage:
    """The render stage's record of an accepted image pinned under `image_cid`."""
    result = rendered.result
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
