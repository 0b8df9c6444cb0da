"""The diffusion renderer and its micro-batcher, on CPU with tiny random-weight models built from configs.

Every model here goes through the production loader (`DiffusionRenderer.load`)
from files written by tests/tiny_diffusion.py: a diffusers folder, an LDM-layout
single file with its config folder, SDXL in both layouts, and a LoRA. Frames are
64x64 so the whole file stays in seconds on two cores.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import render.diffusion.model as diffusion
from render.batching import BatcherClosed, MicroBatcher
from render.diffusion import (
    DiffusionRecipe,
    DiffusionRender,
    DiffusionRenderer,
    DiffusionRequest,
    DiffusionUnavailable,
    InvalidDiffusionModel,
    InvalidDiffusionRecipe,
    ModelNotFound,
    QualityGate,
    sha256_tree,
)
from render.errors import QualityGateFailed, RenderError
from render.quality import QualityReport, QualityThresholds, derive_seed
from tests.support.tiny_diffusion import TinyModels, build_tiny_models

ROOT = Path(__file__).resolve().parents[3]
FAST = DiffusionRecipe(steps=3, guidance=5.0)
# CPU GEMMs block differently for a batch of 3 than for 1, and the rounding differences
# survive to uint8 as off-by-one pixels; anything larger is a real batching bug.
BATCH_TOLERANCE = 2


def request(seed: int, prompt: str = "a serene generative flow composition", **changes: Any) -> DiffusionRequest:
    fields: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": "text, watermark, blurry",
        "seed": seed,
        "width": 64,
        "height": 64,
        "recipe": FAST,
    }
    fields.update(changes)
    return DiffusionRequest(**fields)


def pixels(render: DiffusionRender) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(render.result.png)).convert("RGB")).astype(np.int16)


def max_diff(a: DiffusionRender, b: DiffusionRender) -> int:
    return int(np.abs(pixels(a) - pixels(b)).max())


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # These models are tiny: a second OpenMP thread buys nothing, and on a shared two-core
    # machine its spin-waiting makes the file several times slower under load.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_tiny_models(tmp_path_factory.mktemp("tiny-diffusion") / "models")


@pytest.fixture(scope="module")
def sd15(tiny: TinyModels) -> DiffusionRenderer:
    """The tiny SD 1.5 folder with the brand LoRA loaded (off unless a recipe names it)."""
    return DiffusionRenderer.load(
        tiny.sd15_folder, device="cpu", dtype="float32", loras={"brand": tiny.lora_dir / "brand.safetensors"}
    )


# --- loading -------------------------------------------------------------------------------------


def test_loads_a_diffusers_folder_with_its_identity(sd15: DiffusionRenderer, tiny: TinyModels) -> None:
    assert sd15.kind == "sd"
    assert sd15.model_format == "diffusers"
    assert sd15.model_id == "sd15"
    assert sd15.weights_sha256 == sha256_tree(tiny.sd15_folder)
    assert sd15.dtype == torch.float32
    assert sd15.device == torch.device("cpu")
    assert set(sd15.loras) == {"brand"}
    # A LoRA stays unfused (per-batch switchable), so QKV fusion must be off or it would drop it.
    assert sd15.optimizations["fused_qkv"] is False
    assert sd15.optimizations["sdpa"] is True


def test_missing_model_path_is_a_clear_start_up_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "sdxl-turbo"
    with pytest.raises(ModelNotFound, match="never downloaded") as caught:
        DiffusionRenderer.load(missing, device="cpu")
    assert str(missing) in str(caught.value)
    assert caught.value.code == "diffusion_model_not_found"
    assert isinstance(caught.value, RenderError)


def test_missing_lora_is_a_clear_start_up_error(tiny: TinyModels) -> None:
    with pytest.raises(ModelNotFound, match="LoRA 'brand'"):
        DiffusionRenderer.load(tiny.sd15_folder, device="cpu", loras={"brand": tiny.lora_dir / "gone.safetensors"})


def test_single_file_without_config_folder_is_refused(tiny: TinyModels) -> None:
    with pytest.raises(InvalidDiffusionModel, match="MODEL_CONFIG_PATH"):
        DiffusionRenderer.load(tiny.sd15_file, device="cpu")


def test_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.txt").write_text("not a model")
    with pytest.raises(InvalidDiffusionModel, match=r"model_index\.json"):
        DiffusionRenderer.load(tmp_path, device="cpu")


def test_device_and_dtype_are_explicit(tiny: TinyModels) -> None:
    with pytest.raises(DiffusionUnavailable, match="float32"):
        DiffusionRenderer.load(tiny.sd15_folder, device="cpu", dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(DiffusionUnavailable, match="no CUDA"):
            DiffusionRenderer.load(tiny.sd15_folder, device="cuda")


def test_loading_never_touches_the_network(tiny: TinyModels, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access during model load: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    renderer = DiffusionRenderer.load(tiny.sdxl_file, config_path=tiny.sdxl_file_config, device="cpu")
    assert renderer.kind == "sdxl"
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_single_file_renders_what_the_folder_renders(sd15: DiffusionRenderer, tiny: TinyModels) -> None:
    # Same weights in the LDM layout; fuse_qkv off to match the folder renderer's unfused attention.
    single = DiffusionRenderer.load(
        tiny.sd15_file, config_path=tiny.sd15_file_config, device="cpu", fuse_qkv=False, model_id="tiny-sd15"
    )
    assert (single.kind, single.model_format, single.model_id) == ("sd", "single_file", "tiny-sd15")
    assert single.render(request(7)).result.pixel_sha256 == sd15.render(request(7)).result.pixel_sha256


def test_sdxl_folder_and_single_file_agree(tiny: TinyModels) -> None:
    folder = DiffusionRenderer.load(tiny.sdxl_folder, device="cpu")
    single = DiffusionRenderer.load(tiny.sdxl_file, config_path=tiny.sdxl_file_config, device="cpu")
    assert folder.kind == single.kind == "sdxl"
    assert folder.optimizations["fused_qkv"] is True
    a, b = folder.render(request(3)), single.render(request(3))
    assert a.result.pixel_sha256 == b.result.pixel_sha256
    assert a.provenance["model_kind"] == "sdxl"


# --- determinism and batching --------------------------------------------------------------------


def test_same_seed_same_bytes_in_one_process(sd15: DiffusionRenderer) -> None:
    first, second = sd15.render(request(42)), sd15.render(request(42))
    assert first.result.png == second.result.png
    assert first.result.pixel_sha256 == second.result.pixel_sha256
    assert sd15.render(request(43)).result.pixel_sha256 != first.result.pixel_sha256


def test_size_is_width_by_height(sd15: DiffusionRenderer) -> None:
    render = sd15.render(request(1, width=96, height=64))
    image = Image.open(io.BytesIO(render.result.png))
    assert image.size == (96, 64)
    assert (render.result.width, render.result.height) == (96, 64)


def test_batch_of_n_equals_n_singles(sd15: DiffusionRenderer) -> None:
    requests = [request(11, "a serene flow"), request(12, "an energetic grid of neon"), request(13, "austere rings")]
    batch = sd15.render_batch(requests)
    assert all(isinstance(item, DiffusionRender) for item in batch)
    for item, alone in zip(batch, (sd15.render(r) for r in requests), strict=True):
        assert isinstance(item, DiffusionRender)
        assert max_diff(item, alone) <= BATCH_TOLERANCE
        assert item.provenance["batch_size"] == 3
        assert item.result.seed == alone.result.seed
    # Different prompts and seeds per item really are different pictures.
    first, second = batch[0], batch[1]
    assert isinstance(first, DiffusionRender)
    assert isinstance(second, DiffusionRender)
    assert np.abs(pixels(first) - pixels(second)).mean() > 5


def test_batches_larger_than_the_limit_are_split(tiny: TinyModels) -> None:
    renderer = DiffusionRenderer.load(tiny.sd15_folder, device="cpu", max_batch_size=2)
    outcomes = renderer.render_batch([request(seed) for seed in (1, 2, 3)])
    assert [o.provenance["batch_size"] for o in outcomes if isinstance(o, DiffusionRender)] == [2, 2, 1]


def test_mixed_recipes_cannot_share_a_batch(sd15: DiffusionRenderer) -> None:
    with pytest.raises(RenderError, match="batch_key"):
        sd15.render_batch([request(1), request(2, recipe=DiffusionRecipe(steps=2))])


def test_reproducible_across_processes(sd15: DiffusionRenderer, tiny: TinyModels, tmp_path: Path) -> None:
    out = tmp_path / "pixels.npy"
    script = (
        "import sys, numpy as np, io\n"
        "from PIL import Image\n"
        "from render.diffusion import DiffusionRenderer, DiffusionRequest, DiffusionRecipe\n"
        "r = DiffusionRenderer.load(sys.argv[1], device='cpu')\n"
        "req = DiffusionRequest('a serene generative flow composition', 'text, watermark, blurry', 5, 64, 64,"
        " DiffusionRecipe(steps=3, guidance=5.0))\n"
        "np.save(sys.argv[2], np.asarray(Image.open(io.BytesIO(r.render(req).result.png)).convert('RGB')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    subprocess.run([sys.executable, "-c", script, str(tiny.sd15_folder), str(out)], check=True, env=env, timeout=120)
    # A fresh process with another thread count (2 there, 1 here): exact bytes are not promised
    # across thread counts, +-1 per channel is.
    here = pixels(sd15.render(request(5)))
    assert int(np.abs(np.load(out).astype(np.int16) - here).max()) <= 1


# --- recipes: schedulers, few-step variants, LoRA ------------------------------------------------


def test_scheduler_and_steps_come_from_the_recipe(sd15: DiffusionRenderer) -> None:
    base = sd15.render(request(9))
    turbo = sd15.render(
        request(9, recipe=DiffusionRecipe(scheduler="euler_a", steps=1, guidance=0.0, timestep_spacing="trailing"))
    )
    lcm = sd15.render(request(9, recipe=DiffusionRecipe(scheduler="lcm", steps=2, guidance=1.0)))
    karras = sd15.render(request(9, recipe=DiffusionRecipe(scheduler="dpmpp_2m_karras", steps=3)))
    assert turbo.provenance["scheduler"] == {
        "name": "euler_a",
        "class": "EulerAncestralDiscreteScheduler",
        "timestep_spacing": "trailing",
        "prediction_type": "epsilon",
        "use_karras_sigmas": False,
    }
    assert (turbo.provenance["steps"], turbo.provenance["guidance"]) == (1, 0.0)
    assert lcm.provenance["scheduler"]["class"] == "LCMScheduler"
    assert karras.provenance["scheduler"]["use_karras_sigmas"] is True
    hashes = {r.result.pixel_sha256 for r in (base, turbo, lcm, karras)}
    assert len(hashes) == 4
    # Switching back restores the model's own scheduler exactly.
    assert sd15.render(request(9)).result.pixel_sha256 == base.result.pixel_sha256


def test_lora_named_by_the_recipe_changes_the_image_and_switches_off(sd15: DiffusionRenderer) -> None:
    base = sd15.render(request(21))
    branded = sd15.render(request(21, recipe=DiffusionRecipe(steps=3, guidance=5.0, lora="brand")))
    assert np.abs(pixels(branded) - pixels(base)).mean() > 1
    assert branded.provenance["lora"]["name"] == "brand"
    assert len(branded.provenance["lora"]["sha256"]) == 64
    zero = sd15.render(request(21, recipe=DiffusionRecipe(steps=3, guidance=5.0, lora="brand", lora_scale=0.0)))
    assert max_diff(zero, base) <= 1
    assert sd15.render(request(21)).result.pixel_sha256 == base.result.pixel_sha256


def test_unknown_lora_fails_only_its_own_item(sd15: DiffusionRenderer) -> None:
    recipe = DiffusionRecipe(steps=3, guidance=5.0, lora="nope")
    outcomes = sd15.render_batch([request(1, recipe=recipe), request(2, recipe=recipe)])
    assert all(isinstance(o, InvalidDiffusionRecipe) and "nope" in str(o) for o in outcomes)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sampler": "euler"}, "unknown keys"),
        ({"scheduler": "heun9"}, "scheduler"),
        ({"steps": 0}, "steps"),
        ({"steps": True}, "steps"),
        ({"guidance": float("nan")}, "guidance"),
        ({"timestep_spacing": "sideways"}, "timestep_spacing"),
        ({"width": 500}, "width"),
    ],
)
def test_bad_recipe_tables_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDiffusionRecipe, match=message):
        DiffusionRecipe.from_mapping(raw)


def test_request_for_a_job_comes_from_the_style_dna() -> None:
    from personalization.style import StyleParams, load_style_dna

    dna = load_style_dna(ROOT / "collections" / "default.toml")
    params = StyleParams("dawn", "ink", "flow", "serene", 5, 50, 50, 20, 0)
    job = DiffusionRequest.for_job(dna, params, seed=123)
    assert job.prompt == dna.prompt(params)
    for word in dna.negative_prompts:
        assert word in job.negative_prompt
    assert (job.width, job.height, job.seed) == (dna.width, dna.height, 123)
    assert job.recipe == DiffusionRecipe.from_dna(dna)
    assert job.gate is not None
    assert job.gate.max_attempts == 3

    raw = {
        **dna.raw,
        "render": {"width": 1024, "height": 1024, "diffusion": {"steps": 4, "width": 512}},
        "quality": {"max_attempts": 5, "min_std": 0.05},
    }
    tuned = DiffusionRequest.for_job(type(dna)(**{**dna.__dict__, "raw": raw}), params, seed=1)
    assert (tuned.recipe.steps, tuned.width, tuned.height) == (4, 512, 1024)
    assert tuned.gate == QualityGate(QualityThresholds(min_std=0.05), max_attempts=5)


# --- quality gate and provenance -----------------------------------------------------------------


def test_gate_rerenders_rejected_frames_with_derived_seeds(
    sd15: DiffusionRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def reject_first_look(frame: np.ndarray, thresholds: QualityThresholds | None = None) -> QualityReport:
        calls.append(float(frame.mean()))
        ok = len(calls) > 2  # both items of the first batch are rejected once
        return QualityReport(ok=ok, reasons=[] if ok else ["near-uniform: crafted"], metrics={})

    monkeypatch.setattr(diffusion, "check_quality", reject_first_look)
    first, second = sd15.render_batch([request(100), request(200)])
    assert isinstance(first, DiffusionRender)
    assert isinstance(second, DiffusionRender)
    assert (first.result.attempts, first.result.seed) == (2, derive_seed(100, 1))
    assert (first.provenance["seed"], first.provenance["requested_seed"]) == (derive_seed(100, 1), 100)
    assert second.result.seed == derive_seed(200, 1)
    assert second.provenance["batch_size"] == 2  # the retries were batched together too
    # The accepted frame is exactly what the derived seed renders on its own.
    direct = sd15.render(request(derive_seed(100, 1), gate=None))
    assert max_diff(direct, first) <= BATCH_TOLERANCE


def test_gate_gives_up_after_max_attempts(sd15: DiffusionRenderer) -> None:
    impossible = QualityGate(QualityThresholds(min_std=0.99), max_attempts=2)
    (outcome,) = sd15.render_batch([request(5, gate=impossible)])
    assert isinstance(outcome, QualityGateFailed)
    assert outcome.attempts == 2
    assert outcome.seeds == (5, derive_seed(5, 1))
    assert any("near-uniform" in reason for reason in outcome.reasons)


def test_provenance_records_the_whole_stack(sd15: DiffusionRenderer) -> None:
    render = sd15.render(request(77, recipe=DiffusionRecipe(scheduler="ddim", steps=2, guidance=4.5)))
    p = render.provenance
    assert p["renderer"] == render.result.renderer == "diffusion"
    assert (p["model_id"], p["model_kind"], p["weights_sha256"]) == ("sd15", "sd", sd15.weights_sha256)
    assert (p["steps"], p["guidance"], p["width"], p["height"], p["seed"]) == (2, 4.5, 64, 64, 77)
    assert p["scheduler"]["class"] == "DDIMScheduler"
    assert p["prompt"] == "a serene generative flow composition"
    assert p["negative_prompt"] == "text, watermark, blurry"
    assert p["dtype"] == "float32"
    assert p["device"].startswith("cpu")
    assert p["libraries"]["torch"] == torch.__version__
    assert p["libraries"]["diffusers"]
    assert p["libraries"]["transformers"]
    assert render.result.png.startswith(b"\x89PNG")
    assert render.result.synth_seconds > 0


# --- the micro-batcher ---------------------------------------------------------------------------


class Recorder:
    """A fake run_batch: records batches, optionally sleeps, fails items whose value is negative."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if self.delay:
            time.sleep(self.delay)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def test_concurrent_submissions_share_one_batch() -> None:
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=4, max_wait_ms=200)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)))
    assert results == [10, 20, 30]
    assert recorder.batches == [[1, 2, 3]]
    await batcher.aclose()


async def test_a_full_batch_does_not_wait() -> None:
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=2, max_wait_ms=30_000)
    started = time.monotonic()
    assert await asyncio.gather(batcher.submit(1), batcher.submit(2)) == [10, 20]
    assert time.monotonic() - started < 5  # far below the 30 s wait: the batch was full
    await batcher.aclose()


async def test_a_lone_job_waits_at_most_max_wait() -> None:
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=8, max_wait_ms=50)
    started = time.monotonic()
    assert await batcher.submit(7) == 70
    elapsed = time.monotonic() - started
    assert 0.04 <= elapsed < 2.0  # it did wait for company, and gave up on time
    assert recorder.batches == [[7]]
    await batcher.aclose()


async def test_jobs_arriving_during_a_batch_go_together_next() -> None:
    recorder = Recorder(delay=0.3)
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=8, max_wait_ms=0)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.1)  # batch [1] is running on the "GPU" now
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]
    assert batcher.stats.batches == 2
    assert batcher.stats.largest == 3
    await batcher.aclose()


async def test_incompatible_requests_are_not_mixed() -> None:
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=8, max_wait_ms=50, key=lambda i: i % 2)
    assert await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3, 4))) == [10, 20, 30, 40]
    assert sorted(recorder.batches) == [[1, 3], [2, 4]]
    await batcher.aclose()


async def test_errors_reach_only_their_own_caller() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(Recorder(), max_batch_size=4, max_wait_ms=50)
    ok, bad = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
    assert ok == 10
    assert isinstance(bad, ValueError)

    def explode(items: list[int]) -> list[int]:
        raise RuntimeError("CUDA error: device-side assert")

    broken: MicroBatcher[int, int] = MicroBatcher(explode, max_batch_size=4, max_wait_ms=10)
    outcomes = await asyncio.gather(broken.submit(1), broken.submit(2), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await asyncio.gather(batcher.submit(3)) == [30]  # the batcher keeps serving after errors
    await batcher.aclose()
    await broken.aclose()


async def test_cancelled_jobs_leave_the_queue() -> None:
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=8, max_wait_ms=100)
    doomed = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    survivor = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)
    doomed.cancel()
    assert await survivor == 20
    assert recorder.batches == [[2]]
    await batcher.aclose()


async def test_close_fails_queued_jobs_and_refuses_new_ones() -> None:
    recorder = Recorder(delay=0.2)
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, max_batch_size=1, max_wait_ms=0)
    running = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    await batcher.aclose()
    assert await running == 10  # the batch in flight finishes
    with pytest.raises(BatcherClosed):
        await queued
    with pytest.raises(BatcherClosed):
        await batcher.submit(3)
    # Workers fail jobs on RenderError for good; a stopping worker must leave them for a retry.
    assert not issubclass(BatcherClosed, RenderError)


async def test_batches_and_warm_up_run_on_one_dedicated_thread() -> None:
    threads: list[int] = []

    def run(items: list[int]) -> list[int]:
        threads.append(threading.get_ident())
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch_size=2, max_wait_ms=0)
    await batcher.call(lambda: threads.append(threading.get_ident()))
    assert [await batcher.submit(1), await batcher.submit(2)] == [1, 2]
    assert len(threads) == 3
    assert len(set(threads)) == 1  # CUDA graphs recorded in warm-up are replayed by the same thread
    assert threads[0] != threading.get_ident()  # and never on the event loop
    await batcher.aclose()


async def test_batcher_drives_the_real_renderer(sd15: DiffusionRenderer) -> None:
    batcher: MicroBatcher[DiffusionRequest, DiffusionRender] = MicroBatcher(
        sd15.render_batch, max_batch_size=4, max_wait_ms=100, key=lambda r: r.batch_key
    )
    other = DiffusionRecipe(steps=2, guidance=3.0)
    requests = [request(31), request(32, "energetic neon grid"), request(33, recipe=other), request(34)]
    renders = await asyncio.gather(*(batcher.submit(r) for r in requests))
    assert [r.result.seed for r in renders] == [31, 32, 33, 34]
    assert sorted(batcher.stats.sizes.items()) == [(1, 1), (3, 1)]  # the odd recipe went alone
    for r, render in zip(requests, renders, strict=True):
        assert max_diff(render, sd15.render(r)) <= BATCH_TOLERANCE
    await batcher.aclose()


# --- GPU only ------------------------------------------------------------------------------------


@pytest.fixture
def cuda() -> Iterator[None]:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (this machine and CI have none; run benchmarks/render_gpu.py on one)")
    yield
    torch.cuda.empty_cache()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_cuda_is_deterministic(cuda: None, tiny: TinyModels, dtype: str) -> None:
    renderer = DiffusionRenderer.load(tiny.sd15_folder, device="cuda", dtype=dtype)
    first, second = renderer.render(request(1, gate=None)), renderer.render(request(1, gate=None))
    assert first.result.pixel_sha256 == second.result.pixel_sha256
    assert first.provenance["device"].startswith("cuda:")
    assert first.provenance["dtype"] == dtype


@pytest.mark.gpu
def test_compiled_renderer_matches_eager_on_cuda(cuda: None, tiny: TinyModels) -> None:
    eager = DiffusionRenderer.load(tiny.sd15_folder, device="cuda", dtype="float16")
    compiled = DiffusionRenderer.load(tiny.sd15_folder, device="cuda", dtype="float16", compile=True)
    compiled.warmup(FAST, 64, 64, batch_sizes=(1, 2))
    assert compiled.optimizations["compile"] == "default"
    assert max_diff(eager.render(request(2, gate=None)), compiled.render(request(2, gate=None))) <= 3
