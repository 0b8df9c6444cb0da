"""A render whose bytes no pinner holds (its worker's disk is gone): rendered again, checked, pinned."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from redis.asyncio import Redis

from devstack.local import RedisServer
from ipfs.cid import cid_for_bytes
from ipfs.pinning.local import LocalStore
from jobs.model import Job
from jobs.store import JobStore
from personalization.orchestrator import Orchestration
from personalization.style import StyleDNA, StyleParams, load_style_dna
from pipeline.runner import Personalizer, Pipeline, PipelineDeps, render_stage_of
from render.errors import RenderError
from render.renderer import Rendered, Renderer
from render.renderer.procedural import ProceduralRenderer

ROOT = Path(__file__).resolve().parents[3]
DNA = load_style_dna(ROOT / "collections" / "default.toml")
PARAMS = StyleParams("ledger", "ink", "terrain", "austere", 4, 35, 20, 30, -8)
ORCHESTRATION = Orchestration(params=PARAMS, orchestrator="rules", persona="builder")


class OtherPixels:
    """A renderer that does not reproduce: another seed than it is asked for."""

    def __init__(self) -> None:
        self.inner = ProceduralRenderer()

    async def render(self, dna: StyleDNA, params: StyleParams, seed: int) -> Rendered:
        return await self.inner.render(dna, params, seed + 1)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _run(tmp_path: Path, renderer: Renderer) -> tuple[Any, Any, LocalStore, Job | None]:
    """Render a job's image on 'another machine' (bytes not kept), then run the pin check here."""

    async def run() -> tuple[Any, Any, LocalStore, Job | None]:
        with RedisServer(tmp_path / "redis") as server:
            redis = Redis.from_url(server.url)
            try:
                jobs = JobStore(redis)
                accepted = await jobs.accept(
                    tenant="t",
                    recipient=Account.create().address.lower(),
                    collection="default",
                    context={},
                    idempotency_key=None,
                )
                job = await jobs.get(accepted.job_id)
                assert job is not None
                elsewhere = await ProceduralRenderer().render(DNA, PARAMS, job.seed)
                recorded = render_stage_of(elsewhere, cid_for_bytes(elsewhere.result.png))
                await jobs.save_stage(job.id, recorded, 0.1)
                store = LocalStore(tmp_path / "ipfs")  # this machine's disk: empty
                deps = PipelineDeps(
                    jobs=jobs,
                    personalizer=cast(Personalizer, None),  # profile and style are not asked for here
                    collections={"default": DNA},
                    pinner=store,
                    renderer=renderer,
                )
                try:
                    found = await Pipeline(deps)._image_pinned(job, DNA, ORCHESTRATION, recorded)
                except RenderError as exc:
                    found = exc
                return recorded, found, store, await jobs.get(job.id)
            finally:
                await redis.aclose()

    return asyncio.run(run())


def test_a_lost_render_is_rendered_again_with_the_recorded_pixels(tmp_path: Path) -> None:
    recorded, found, store, saved = _run(tmp_path, ProceduralRenderer())
    assert found.pixel_sha256 == recorded.pixel_sha256
    assert found.image_cid == recorded.image_cid  # the same encoder here: the same file, the same CID
    pinned = store.get_sync(recorded.image_cid)
    assert pinned is not None
    assert pinned.content_type == "image/png"
    assert saved is not None
    assert saved.render == recorded


def test_a_render_that_does_not_reproduce_is_refused(tmp_path: Path) -> None:
    recorded, found, store, _ = _run(tmp_path, OtherPixels())
    assert isinstance(found, RenderError)
    assert "other pixels" in str(found)
    assert store.get_sync(recorded.image_cid) is None  # nothing pinned for the job
