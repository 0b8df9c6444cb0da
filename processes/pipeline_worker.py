"""The pipeline worker process: takes jobs off the pipeline queue and runs them to 'minting'.

Previews come off their own queue (`pm-preview`), run by a second SAQ worker in the same process
with its own concurrency (PERSONAMINT_PREVIEW_WORKER_CONCURRENCY) over the same resources: a
preview never takes one of the mints' slots, and a flood of previews waits behind itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from saq import Worker
from saq.job import Job as SaqJob
from saq.types import Context

from chain.errors import ChainError, ChainUnavailable
from chain.rpc import JsonRpc
from config.chain_check import refuse_wrong_chains
from config.clients import Core
from config.settings import Settings
from ipfs.pinning import CIDMismatch, Pinner, PinningRejected
from jobs.codec import encode_output
from jobs.errors import job_error
from jobs.keys import preview_image_key, preview_snapshot_key
from jobs.minters import has_live_minter, waiting_for_minter
from jobs.model import Job, JobStatus
from jobs.queues import PREVIEW_QUEUE, enqueue_mint, heartbeat, make_queue, worker_timers
from observability.logging import job_context, quiet_retries
from observability.metrics import WorkerMetrics, serve_process_metrics
from personalization.caps import Rankings
from personalization.errors import PersonalizationError, StyleDNAError
from personalization.style import StyleDNA, StyleParams
from pipeline.build import build_personalizer, history_rpcs
from pipeline.runner import Personalizer, Pipeline, PipelineDeps
from render.errors import RenderError
from render.renderer import DiffusionOptions, Renderer, build_renderer

log = logging.getLogger("personamint.worker")

# Errors that no retry can fix: the job ends failed at once. History errors are
# transport trouble and are retried; so are pin timeouts (a retry reuses the live pin request).
PERMANENT = (RenderError, StyleDNAError, CIDMismatch, PinningRejected)


@dataclass(frozen=True)
class WorkerResources:
    """What one worker process builds at start-up and every job it runs shares."""

    core: Core
    rpcs: dict[str, JsonRpc]  # each chain's history client, by route key
    pinner: Pinner
    personalizer: Personalizer
    renderer: Renderer
    pipeline: Pipeline
    metrics: WorkerMetrics
    stop_metrics: Any = None  # the metrics server's stop function, when one runs

    async def aclose(self) -> None:
        if self.stop_metrics is not None:
            self.stop_metrics()
        await self.personalizer.aclose()
        await self.renderer.aclose()
        for rpc in self.rpcs.values():
            await rpc.aclose()
        await self.core.close()


class WorkerContext(Context, total=False):
    """SAQ's task context plus this process's own: the settings before start-up, the resources after."""

    settings: Settings
    resources: WorkerResources


async def pipeline_job(ctx: WorkerContext, *, job_id: str) -> str:
    """SAQ entry point (its name is the queue's function name); every log line carries the job id."""
    with job_context(job_id):
        return await _pipeline_job(ctx, job_id)


async def _pipeline_job(ctx: WorkerContext, job_id: str) -> str:
    resources = ctx["resources"]
    core, pipeline, metrics = resources.core, resources.pipeline, resources.metrics
    saq_job = ctx.get("job")
    job = await core.jobs.get(job_id)
    if job is None:
        log.warning("job %s vanished", job_id)  # its place in the tenant's share: the reconciler's sweep
        return "missing"
    if job.status.ended:
        await core.fair.release(core.fair_lane(job.tenant, job.collection), job_id)
        return job.status
    await core.jobs.bump_attempts(job_id)
    try:
        async with heartbeat(saq_job, core.settings.job_heartbeat_s / 3):
            await pipeline.run(job)
    except PERMANENT as exc:
        await core.jobs.fail(job_id, job_error(exc))
        await core.fair.release(core.fair_lane(job.tenant, job.collection), job_id)
        metrics.jobs.labels(JobStatus.FAILED).inc()
        return JobStatus.FAILED
    except Exception as exc:
        last = await _fail_if_last_attempt(core, saq_job, job_id, exc)
        if last:
            await core.fair.release(core.fair_lane(job.tenant, job.collection), job_id)
        elif isinstance(exc, ChainUnavailable):
            await _say_chain_unreachable(core, job, exc)
        metrics.jobs.labels("failed" if last else "retry").inc()
        raise
    chain = core.chain_for(job.collection)
    detail = None if await has_live_minter(core.redis, chain.key) else waiting_for_minter(chain.label)
    await core.jobs.set_status(job_id, JobStatus.MINTING, detail=detail)
    await enqueue_mint(core.mint_queue_for(job.collection), core.settings, job_id)
    # Past the pipeline stage: the job's place in its tenant's share goes to the tenant's next one.
    await core.fair.release(core.fair_lane(job.tenant, job.collection), job_id)
    metrics.jobs.labels(JobStatus.MINTING).inc()
    return JobStatus.MINTING


async def preview_job(
    ctx: WorkerContext,
    *,
    collection: str,
    seed: int,
    preview_id: str,
    ttl_s: int,
    recipient: str | None = None,
    context: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    edition: int | None = None,
    block: int | None = None,
) -> dict[str, Any]:
    """A preview of `recipient`'s next mint, made here with the worker's personalizer and renderer
    (the ones mints get); the PNG goes to Redis for the API.

    Profile and style (a history scan over RPC, the orchestrator, perhaps an LLM) run here rather
    than in the API, at the previewer's priority: a preview flood costs the API's event loop only
    the enqueue. A job with `params` (enqueued by an API from before this) is rendered as given.
    """
    resources = ctx["resources"]
    core = resources.core
    dna = core.collections[collection]
    answer: dict[str, Any] = {}
    if params is None:
        if recipient is None:
            raise ValueError("preview_job needs a recipient or params")
        try:
            chain = core.chain_for(collection).key
            profile = await resources.personalizer.profile(recipient, context or {}, chain=chain, block=block)

            # The collection's rarity caps as they stand now, read only (a preview reserves nothing):
            # a mint with this preview's id reserves exactly these params, or ends preview_outdated.
            async def peek(rankings: Rankings) -> dict[str, str]:
                return await resources.pipeline.caps.peek(dna, rankings)

            orchestration = await resources.personalizer.capped_style(profile, dna, peek)
        except (ChainError, PersonalizationError) as exc:  # the API answers it with the code's problem
            log.warning("preview %s: %s (%s)", preview_id, type(exc).__name__, exc.code)
            return {"failed": {"code": exc.code, "message": str(exc)[:300]}}
        params = orchestration.params.to_dict()
        if edition is not None:
            # A mint with this preview's id adopts exactly this profile and style (and the seed of
            # this edition): the previewed pixels, whatever the wallet did since.
            snapshot: dict[Any, Any] = {
                "collection": collection,
                "recipient": recipient,
                "context": json.dumps(context or {}, sort_keys=True),
                "edition": str(edition),
                "seed": str(seed),
                "profile": encode_output(profile),
                "style": encode_output(orchestration),
            }
            async with core.redis.pipeline(transaction=True) as pipe:
                pipe.hset(preview_snapshot_key(preview_id), mapping=snapshot)
                pipe.expire(preview_snapshot_key(preview_id), ttl_s)
                await pipe.execute()
        answer = {
            "persona": orchestration.persona,
            "style": params,
            "profile": profile.to_dict(),
            "block_number": profile.block_number,
        }
    result = (await resources.renderer.render(dna, StyleParams.from_dict(params), seed)).result
    await core.redis.set(preview_image_key(preview_id), result.png, ex=ttl_s)
    resources.metrics.previews.inc()
    return {
        **answer,
        "width": result.width,
        "height": result.height,
        "pixel_sha256": result.pixel_sha256,
        "image_sha256": result.file_sha256,
        "renderer": result.renderer,
    }


async def _say_chain_unreachable(core: Core, job: Job, exc: ChainUnavailable) -> None:
    """While a job's chain does not answer, its status says so, and so do those of the tenant's jobs
    waiting behind it in that chain's line (the oldest hundred; each is told once)."""
    label = core.chain_for(job.collection).label
    detail = f"{label} is unreachable ({type(exc).__name__}); the job retries and goes on when it answers"
    waiting = await core.fair.waiting_ids(core.fair_lane(job.tenant, job.collection))
    for job_id in [job.id, *waiting]:
        current = await core.jobs.get(job_id)
        if current is None or current.status.ended or current.detail == detail:
            continue
        await core.jobs.set_status(job_id, current.status, detail=detail)


async def _fail_if_last_attempt(core: Core, saq_job: SaqJob | None, job_id: str, exc: BaseException) -> bool:
    """Record the failure when no retry is left; True when this was the job's last attempt."""
    log.warning("job %s attempt failed: %s", job_id, type(exc).__name__)
    if saq_job is not None and saq_job.attempts >= saq_job.retries:
        await core.jobs.fail(job_id, job_error(exc))
        return True
    return False


async def startup(ctx: WorkerContext) -> None:
    settings = ctx["settings"]
    core = Core.create(settings)
    rpcs = history_rpcs(core.routes)
    pinner = core.pinner
    renderer = await renderer_from_settings(settings, core.collections)
    metrics = WorkerMetrics()
    stop_metrics = None
    if settings.metrics_port is not None:
        stop_metrics = serve_process_metrics(metrics.registry, settings.metrics_host, settings.metrics_port)
    personalizer = build_personalizer(settings, rpcs, core.redis)
    pipeline = Pipeline(
        PipelineDeps(
            jobs=core.jobs,
            personalizer=personalizer,
            collections=core.collections,
            pinner=pinner,
            renderer=renderer,
            on_stage=metrics.observe_stage,
            chains={collection_id: route.chain.key for collection_id, route in core.routes.collections.items()},
        )
    )
    ctx["resources"] = WorkerResources(
        core=core,
        rpcs=rpcs,
        pinner=pinner,
        personalizer=personalizer,
        renderer=renderer,
        pipeline=pipeline,
        metrics=metrics,
        stop_metrics=stop_metrics,
    )


async def renderer_from_settings(settings: Settings, collections: Mapping[str, StyleDNA]) -> Renderer:
    """This worker's renderer, built once at start-up: a diffusion model is loaded and warmed here."""
    diffusion = None
    if settings.model_path is not None:  # settings refuse renderer=diffusion without one
        diffusion = DiffusionOptions(
            model_path=settings.model_path,
            model_config_path=settings.model_config_path,
            model_kind=settings.model_kind,
            model_id=settings.model_id,
            lora_dir=settings.lora_dir,
            device=settings.device,
            dtype=settings.dtype,
            compile=settings.compile,
            compile_mode=settings.compile_mode,
            batch_size=settings.render_batch_size,
            batch_wait_ms=settings.render_batch_wait_ms,
        )
    return await build_renderer(settings.renderer, collections, diffusion=diffusion)


async def shutdown(ctx: WorkerContext) -> None:
    resources = ctx.get("resources")
    if resources is not None:
        await resources.aclose()


async def run_worker(settings: Settings) -> None:
    """Take jobs off the queues the settings name (PERSONAMINT_WORKER_QUEUES) until SIGTERM.

    Both by default. A process for previews alone (`["preview"]`), started at a higher niceness
    (PERSONAMINT_WORKER_NICE, as `serve` does), renders previews with whatever CPU the mints leave:
    previews are speculative and a caller may ask again, a mint is paid for.
    """
    # A chain that does not answer is retried (and the job's status says so): one line per attempt.
    quiet_retries("saq", ChainUnavailable)
    core = Core.create(settings)
    try:
        # A chain that does not answer yet is only logged when there are several: the others' jobs go on.
        await refuse_wrong_chains(settings, refuse_unreachable=len(core.routes.chains) == 1)
        if "pipeline" in settings.worker_queues:
            await _run_pipeline_worker(settings, core, with_previews="preview" in settings.worker_queues)
        else:
            await _run_preview_worker(settings, core)
    finally:
        await core.close()


def yield_cpu(settings: Settings) -> None:
    """Take the settings' CPU priority: once the worker is up, not before (a previewer started at
    SCHED_IDLE beside busy mint workers could take minutes just to import and build its renderer)."""
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    if settings.worker_idle_cpu and hasattr(os, "SCHED_IDLE"):
        # Weight 3 against a nice-0 process's 1024 (nice 10 still gets ~10 % beside one): a
        # preview renders with the CPU that mints, the API and the chain leave over.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


async def _startup_then_yield(ctx: WorkerContext) -> None:
    await startup(ctx)
    yield_cpu(ctx["settings"])


def _preview_worker(core: Core, settings: Settings, *, alone: bool) -> Worker[WorkerContext]:
    """The pm-preview worker: alone, it builds the resources itself; else the pipeline worker shares its own."""
    return Worker(
        make_queue(core.redis, PREVIEW_QUEUE, sweep_s=settings.sweep_s),
        functions=[preview_job],
        concurrency=settings.preview_worker_concurrency,
        startup=_startup_then_yield if alone else None,
        shutdown=shutdown if alone else None,
        timers=worker_timers(settings.sweep_s),
    )


async def _run_preview_worker(settings: Settings, core: Core) -> None:
    worker = _preview_worker(core, settings, alone=True)
    worker.context["settings"] = settings
    log.info("preview worker starting (concurrency %d)", settings.preview_worker_concurrency)
    await worker.start()


async def _run_pipeline_worker(settings: Settings, core: Core, *, with_previews: bool) -> None:
    previews = _preview_worker(core, settings, alone=False) if with_previews else None
    if previews is not None:
        previews.SIGNALS = []  # the pipeline worker takes SIGTERM and stops this one

    async def share_resources(ctx: WorkerContext) -> None:
        await startup(ctx)
        yield_cpu(settings)
        if previews is not None:
            previews.context["resources"] = ctx["resources"]
            previews_task.append(asyncio.create_task(previews.start()))

    async def stop_previews_then_shutdown(ctx: WorkerContext) -> None:
        while previews_task and previews is not None:
            await previews.stop()
            await previews_task.pop()
        await shutdown(ctx)

    # preview_job stays on the pipeline queue too, for previews enqueued there before an upgrade.
    worker: Worker[WorkerContext] = Worker(
        core.pipeline_queue,
        functions=[pipeline_job, preview_job],
        concurrency=settings.pipeline_concurrency,
        startup=share_resources,
        shutdown=stop_previews_then_shutdown,
        timers=worker_timers(settings.sweep_s),
    )
    worker.context["settings"] = settings
    previews_task: list[asyncio.Task[None]] = []
    log.info(
        "pipeline worker starting (concurrency %d, previews %s)",
        settings.pipeline_concurrency,
        settings.preview_worker_concurrency if previews is not None else "elsewhere",
    )
    # SAQ installs its own SIGINT/SIGTERM handlers; start() returns once one arrives, after its
    # shutdown hook, which stops the preview worker before the shared resources close.
    await worker.start()
