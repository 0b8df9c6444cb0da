"""Diffusion throughput: a vanilla diffusers pipeline against render.diffusion, same model, same dtype.

Full-size SD 1.5 (512x512, 25 steps) and SDXL (1024x1024, 30 steps) are built
from their published architecture configs with random weights, directly on the
device (compute does not depend on weight values, so no checkpoint is needed).
For each model, in one run:

  (a) vanilla: StableDiffusion(XL)Pipeline with its defaults, in the same half
      precision, with diffusers' default SDPA attention;
  (b) ours: DiffusionRenderer.from_pipeline on the same modules: channels-last,
      fused QKV projections, torch.compile of the UNet and VAE decoder,
      per-item seeded batches of distinct prompts.

Both are timed at batch 1 and at each --batches size; the best batch is the one
with the most images/s. The UNet's FLOPs per step are counted with
torch.utils.flop_counter and its measured step time turned into a fraction of
the device's measured dense matmul peak. The quality gate is off (random
weights give degenerate frames) and compile/warm-up time is reported, not timed.

Run from the repository root (needs the `gpu` extra: torch, diffusers, transformers, peft):
    python -m benchmarks.render_gpu                  # on a CUDA GPU, about 5-8 minutes on an H100
    python -m benchmarks.render_gpu --tiny           # on CPU: tiny configs at 64x64, proves the script runs
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from diffusers.utils import logging as diffusers_logging
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from render.diffusion import DiffusionRecipe, DiffusionRenderer, DiffusionRequest
from tests.support.tiny_diffusion import clip_tokenizer, tiny_sd15, tiny_sdxl

# --- published architectures (diffusers configs of SD 1.5 and SDXL base 1.0) ---------------------

SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "latent_channels": 4,
    "layers_per_block": 2,
}
CLIP_L: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
OPEN_CLIP_G: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "sd" | "sdxl"
    size: int
    steps: int
    guidance: float
    build: Callable[[torch.device, torch.dtype], Any]


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )


def _text(config: dict[str, Any], cls: type[Any]) -> Any:
    tokenizer = clip_tokenizer()  # ids it produces all lie inside the real 49408-entry vocabulary
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return cls(CLIPTextConfig(**config, **ids, pad_token_id=tokenizer.eos_token_id)).eval()


def build_sd15(device: torch.device, dtype: torch.dtype) -> StableDiffusionPipeline:
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**VAE, sample_size=512, scaling_factor=0.18215)
        text_encoder = _text(CLIP_L, CLIPTextModel)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        unet=unet.eval(),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(device=device, dtype=dtype)


def build_sdxl(device: torch.device, dtype: torch.dtype) -> StableDiffusionXLPipeline:
    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = AutoencoderKL(**VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
        text_encoder = _text(CLIP_L, CLIPTextModel)
        text_encoder_2 = _text(OPEN_CLIP_G, CLIPTextModelWithProjection)
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(),
        unet=unet.eval(),
        scheduler=_scheduler(),
    )
    return pipe.to(device=device, dtype=dtype)


def build_tiny_sd15(device: torch.device, dtype: torch.dtype) -> StableDiffusionPipeline:
    return tiny_sd15().to(device=device, dtype=dtype)


def build_tiny_sdxl(device: torch.device, dtype: torch.dtype) -> StableDiffusionXLPipeline:
    return tiny_sdxl().to(device=device, dtype=dtype)


FULL = (
    Case("SD 1.5", "sd", 512, 25, 7.5, build_sd15),
    Case("SDXL", "sdxl", 1024, 30, 5.0, build_sdxl),
)
TINY = (
    Case("tiny SD 1.5", "sd", 64, 4, 7.5, build_tiny_sd15),
    Case("tiny SDXL", "sdxl", 64, 4, 5.0, build_tiny_sdxl),
)


# --- measurement -----------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], object], runs: int) -> float:
    """Median wall seconds of `runs` calls (after the caller's warm-up), device work included."""
    samples = []
    for _ in range(runs):
        sync(device)
        started = time.perf_counter()
        work()
        sync(device)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul FLOP/s for this device and dtype (the denominator of '% of peak')."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    runs = 20 if device.type == "cuda" else 5
    seconds = timed(device, lambda: [a @ b for _ in range(runs)], 3) / runs
    return 2 * n**3 / seconds


def unet_inputs(
    pipe: Any, kind: str, batch: int, size: int, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """What the pipeline feeds the UNet each step: classifier-free guidance doubles the batch."""
    rows = 2 * batch
    latent = size // pipe.vae_scale_factor
    inputs: dict[str, Any] = {
        "sample": torch.randn(rows, 4, latent, latent, device=device, dtype=dtype),
        "timestep": torch.tensor(500.0, device=device),  # float, like the Euler scheduler's timesteps
        "encoder_hidden_states": torch.randn(
            rows, 77, pipe.unet.config.cross_attention_dim, device=device, dtype=dtype
        ),
    }
    if kind == "sdxl":
        inputs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(rows, pipe.text_encoder_2.config.projection_dim, device=device, dtype=dtype),
            "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * rows, device=device, dtype=dtype),
        }
    return inputs


def call_unet(pipe: Any, inputs: dict[str, Any]) -> object:
    """The UNet call exactly as the pipelines make it, so a compiled UNet is not re-traced."""
    return pipe.unet(
        inputs["sample"],
        inputs["timestep"],
        encoder_hidden_states=inputs["encoder_hidden_states"],
        timestep_cond=None,
        cross_attention_kwargs=None,
        added_cond_kwargs=inputs.get("added_cond_kwargs"),
        return_dict=False,
    )


def unet_flops(pipe: Any, inputs: dict[str, Any]) -> int:
    """FLOPs of one UNet step, counted op by op. Attention is counted through the classic
    (bmm + softmax + bmm) processor, which the counter knows on every backend; SDPA does
    the same arithmetic."""
    pipe.unet.set_attn_processor(AttnProcessor())
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            call_unet(pipe, inputs)
    finally:
        pipe.unet.set_attn_processor(AttnProcessor2_0())
    return int(counter.get_total_flops())


@dataclass
class Row:
    model: str
    variant: str
    batch: int
    seconds_per_image: float
    images_per_second: float
    unet_step_seconds: float
    unet_fraction_of_peak: float
    note: str = ""


def bench_case(
    case: Case, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, peak: float
) -> list[Row]:
    batches = sorted({1, *args.batches})
    started = time.perf_counter()
    pipe = case.build(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    print(f"\n## {case.name}: {case.size}x{case.size}, {case.steps} steps, guidance {case.guidance}, {dtype}")
    print(f"built from configs with random weights in {time.perf_counter() - started:.1f} s")
    per_image = unet_flops(pipe, unet_inputs(pipe, case.kind, 1, case.size, device, dtype))
    flops = {b: per_image * b for b in batches}  # every op is linear in the batch
    print(f"UNet: {per_image / 1e9:.3f} GFLOP per step per image (2 rows: guidance)")
    rows: list[Row] = []

    def unet_step(batch: int) -> float:
        # Inputs made in inference mode like the pipeline's, or a compiled UNet re-traces for them.
        with torch.inference_mode():
            inputs = unet_inputs(pipe, case.kind, batch, case.size, device, dtype)
            for _ in range(2):
                call_unet(pipe, inputs)
            return timed(device, lambda: call_unet(pipe, inputs), args.unet_runs)

    # (a) vanilla: the pipeline's own defaults (SDPA attention, PIL output), same dtype.
    for batch in batches:
        prompts = ["a serene generative flow composition"] * batch

        def vanilla(prompts: list[str] = prompts) -> object:
            return pipe(
                prompt=prompts,
                num_inference_steps=case.steps,
                guidance_scale=case.guidance,
                height=case.size,
                width=case.size,
            )

        vanilla()  # warm-up
        seconds = timed(device, vanilla, args.runs)
        step = unet_step(batch)
        rows.append(
            Row(case.name, "vanilla", batch, seconds / batch, batch / seconds, step, flops[batch] / step / peak)
        )
        print(_format(rows[-1]))

    # (b) ours, on the same modules (modified in place: channels-last, fused QKV, compiled).
    started = time.perf_counter()
    renderer = DiffusionRenderer.from_pipeline(
        pipe,
        kind=case.kind,  # type: ignore[arg-type]
        model_id=f"random-{case.kind}",
        weights_sha256="random-weights",
        device=device,
        dtype=dtype,
        compile=args.compile,
        compile_mode=args.compile_mode,
        max_batch_size=max(batches),
    )
    recipe = DiffusionRecipe(steps=case.steps, guidance=case.guidance)
    renderer.warmup(recipe, case.size, case.size, batch_sizes=batches)
    print(f"ours: optimisations {renderer.optimizations}; set-up + warm-up {time.perf_counter() - started:.1f} s")
    for batch in batches:
        requests = [
            DiffusionRequest(
                f"a serene generative flow composition, variant {i}", "", i, case.size, case.size, recipe, None
            )
            for i in range(batch)
        ]
        encode: list[float] = []

        def ours(requests: list[DiffusionRequest] = requests, encode: list[float] = encode) -> object:
            outcomes = renderer.render_batch(requests)
            encode.append(sum(o.result.encode_seconds for o in outcomes if not isinstance(o, Exception)))
            return outcomes

        ours()
        seconds = timed(device, ours, args.runs)
        png = statistics.median(encode) / batch
        synth = seconds - png * batch  # pixels on the host, like vanilla's PIL images; PNG encoding aside
        step = unet_step(batch)
        rows.append(
            Row(
                case.name,
                "ours",
                batch,
                synth / batch,
                batch / synth,
                step,
                flops[batch] / step / peak,
                note=f"+{png * 1000:.0f} ms/image PNG encode",
            )
        )
        print(_format(rows[-1]))
    return rows


def _format(row: Row) -> str:
    return (
        f"{row.model:>12} | {row.variant:>7} | batch {row.batch:>2} | {row.seconds_per_image:8.3f} s/image | "
        f"{row.images_per_second:8.2f} images/s | UNet {row.unet_step_seconds * 1000:8.2f} ms/step, "
        f"{row.unet_fraction_of_peak:6.1%} of peak {row.note}"
    )


def summarize(rows: Sequence[Row]) -> None:
    print("\n## summary (ours / vanilla, images per second)")
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        base1 = next(r for r in mine if r.variant == "vanilla" and r.batch == 1)
        ours1 = next(r for r in mine if r.variant == "ours" and r.batch == 1)
        base_best = max((r for r in mine if r.variant == "vanilla"), key=lambda r: r.images_per_second)
        ours_best = max((r for r in mine if r.variant == "ours"), key=lambda r: r.images_per_second)
        print(
            f"{model}: batch 1 {ours1.seconds_per_image:.3f} s/image vs {base1.seconds_per_image:.3f} "
            f"-> {ours1.images_per_second / base1.images_per_second:.2f}x; best batch ours {ours_best.batch} "
            f"({ours_best.images_per_second:.2f} images/s) vs vanilla {base_best.batch} "
            f"({base_best.images_per_second:.2f} images/s) -> "
            f"{ours_best.images_per_second / base_best.images_per_second:.2f}x; UNet at best batch "
            f"{ours_best.unet_fraction_of_peak:.1%} of measured peak (vanilla {base_best.unet_fraction_of_peak:.1%})"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs at 64x64 on CPU (proves the script runs)")
    parser.add_argument("--models", default="sd15,sdxl", help="comma-separated: sd15, sdxl")
    parser.add_argument("--batches", default=None, help="batch sizes besides 1 (default 4,8 on GPU; 4 tiny)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per point, median (default 3; tiny 2)")
    parser.add_argument("--unet-runs", type=int, default=10, help="timed UNet steps per point, median")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None)
    parser.add_argument("--device", default=None, help="cuda (default) or cpu (default with --tiny)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile in 'ours'")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode for 'ours'")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    diffusers_logging.set_verbosity_error()  # casting random fp32 modules to half is intended here
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: use --tiny (CPU) to check the script, or run on a GPU machine")
    dtype = getattr(torch, args.dtype or ("float32" if device.type == "cpu" else "bfloat16"))
    args.batches = [int(b) for b in (args.batches or ("4" if args.tiny else "4,8")).split(",") if b]
    args.runs = args.runs or (2 if args.tiny else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = {"sd15": (TINY if args.tiny else FULL)[0], "sdxl": (TINY if args.tiny else FULL)[1]}
    selected = [cases[name.strip()] for name in args.models.split(",") if name.strip()]

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    peak = matmul_peak(device, dtype)
    print(f"# render_gpu on {name}: torch {torch.__version__}, measured {dtype} matmul peak {peak / 1e12:.2f} TFLOP/s")
    print("s/image and images/s: end to end (prompt encoding, sampling, VAE decode, pixels on the host);")
    print("ours excludes PNG encoding (shown separately) and the quality gate is off in both.")
    rows: list[Row] = []
    for case in selected:
        rows.extend(bench_case(case, args, device, dtype, peak))
        gc.collect()  # the case's modules go before the next one is built
        if device.type == "cuda":
            torch.cuda.empty_cache()
    summarize(rows)


if __name__ == "__main__":
    main()
