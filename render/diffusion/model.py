"""DiffusionRenderer: a warm diffusers pipeline rendering micro-batches, with the provenance of each image."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from render.diffusion.errors import InvalidDiffusionModel, InvalidDiffusionRecipe, ModelNotFound
from render.diffusion.loading import (
    SINGLE_FILE_SUFFIXES,
    LoadedLora,
    ModelKind,
    compile_pipeline,
    load_lora,
    load_pipeline,
    read_model_kind,
    resolve_device,
    sha256_file,
    sha256_tree,
)
from render.diffusion.recipe import SCHEDULERS, DiffusionRecipe
from render.diffusion.request import DiffusionRequest
from render.diffusion.stack import device_name, library_versions
from render.errors import InvalidRenderRequest, QualityGateFailed, RenderError
from render.quality import check_quality, derive_seed
from render.result import RenderResult, pixel_sha256

log = logging.getLogger("personamint.render.diffusion")

RENDERER = "diffusion"

# Bump when anything here can change the pixels a given model, recipe and seed produce.
RENDERER_VERSION = "1.0.0"

# zlib level 1: the same trade as the procedural renderer (pinned once, served by a CDN).
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class DiffusionRender:
    """A rendered image and the provenance that lets the same stack render it again."""

    result: RenderResult
    provenance: dict[str, Any]


@dataclass
class _Frames:
    """One forward pass's output: float frames for the gate, uint8 pixels for the PNG."""

    pixels: np.ndarray  # B x H x W x 3 uint8
    floats: np.ndarray  # B x H x W x 3 float32, NaN kept so the gate can see it
    seconds: float


class DiffusionRenderer:
    """A warm diffusers pipeline plus what provenance needs to know about it.

    Build it once per worker with `load` (or `from_pipeline` for components
    already in memory) and keep it; `render_batch` is blocking and not
    thread-safe: drive it from one thread, e.g. through `render.batching.MicroBatcher`.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        kind: ModelKind,
        model_id: str,
        model_format: str,
        weights_sha256: str,
        device: torch.device,
        dtype: torch.dtype,
        loras: Mapping[str, LoadedLora],
        optimizations: Mapping[str, Any],
        max_batch_size: int,
    ) -> None:
        self.pipe = pipe
        self.kind = kind
        self.model_id = model_id
        self.model_format = model_format
        self.weights_sha256 = weights_sha256
        self.device = device
        self.dtype = dtype
        self.loras = dict(loras)
        self.optimizations = dict(optimizations)
        self.max_batch_size = max_batch_size
        self._base_scheduler = pipe.scheduler
        self._scheduler_key: tuple[str, str | None] = ("default", None)
        self._active_lora: tuple[str, float] | None = None
        self._libraries = library_versions()
        self._device_name = device_name(device)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        model_path: str | os.PathLike[str],
        *,
        device: str = "cuda",
        dtype: str = "auto",
        model_kind: str = "auto",
        config_path: str | os.PathLike[str] | None = None,
        loras: Mapping[str, str | os.PathLike[str]] | None = None,
        compile: bool = False,
        compile_mode: str = "default",
        channels_last: bool = True,
        fuse_qkv: bool = True,
        max_batch_size: int = 8,
        model_id: str | None = None,
    ) -> DiffusionRenderer:
        """Load a local model once: a diffusers folder or a single-file checkpoint (+ its config folder).

        Never downloads: hub access is switched off for this process and every
        from_pretrained/from_single_file call is local_files_only. A path that
        does not exist raises ModelNotFound; that is meant to stop the worker at
        start-up, not fail jobs one by one.
        """
        # Before diffusers/huggingface_hub are imported, so their offline switch sees it too.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        path = Path(model_path).expanduser()
        if not path.exists():
            raise ModelNotFound(
                f"diffusion model not found at {path} (PERSONAMINT_MODEL_PATH); models are never downloaded "
                "at run time: put a diffusers folder or a single-file checkpoint there"
            )
        torch_device, torch_dtype = resolve_device(device, dtype)
        lora_paths = {name: Path(p).expanduser() for name, p in (loras or {}).items()}
        for name, lora_path in lora_paths.items():
            if not lora_path.exists():
                raise ModelNotFound(f"LoRA {name!r} not found at {lora_path}")
        started = time.perf_counter()
        if path.is_dir():
            model_format = "diffusers"
            config_dir = path
        elif path.suffix in SINGLE_FILE_SUFFIXES:
            model_format = "single_file"
            if config_path is None:
                raise InvalidDiffusionModel(
                    f"{path} is a single-file checkpoint: set PERSONAMINT_MODEL_CONFIG_PATH to a folder with the "
                    "diffusers configs and tokenizers of its architecture (they cannot be downloaded here)"
                )
            config_dir = Path(config_path).expanduser()
        else:
            raise InvalidDiffusionModel(f"{path} is neither a diffusers folder nor a {SINGLE_FILE_SUFFIXES} file")
        kind = read_model_kind(config_dir, model_kind)
        pipe = load_pipeline(kind, path, config_dir, model_format, torch_dtype)
        weights = sha256_file(path) if path.is_file() else sha256_tree(path)
        log.info("loaded %s model %s (%s) in %.1f s", kind, path, model_format, time.perf_counter() - started)
        return cls.from_pipeline(
            pipe,
            kind=kind,
            model_id=model_id or path.name,
            model_format=model_format,
            weights_sha256=weights,
            device=torch_device,
            dtype=torch_dtype,
            loras=lora_paths,
            compile=compile,
            compile_mode=compile_mode,
            channels_last=channels_last,
            fuse_qkv=fuse_qkv,
            max_batch_size=max_batch_size,
        )

    @classmethod
    def from_pipeline(
        cls,
        pipe: Any,
        *,
        kind: ModelKind,
        model_id: str,
        weights_sha256: str,
        device: torch.device,
        dtype: torch.dtype,
        model_format: str = "in_memory",
        loras: Mapping[str, Path] | None = None,
        compile: bool = False,
        compile_mode: str = "default",
        channels_last: bool = True,
        fuse_qkv: bool = True,
        max_batch_size: int = 8,
    ) -> DiffusionRenderer:
        """Move a pipeline to its device and apply the serving optimisations, in the order they compose."""
        if max_batch_size < 1:
            raise InvalidRenderRequest(f"max_batch_size must be at least 1, got {max_batch_size}")
        from diffusers.models.attention_processor import AttnProcessor2_0

        # Loaders already applied torch_dtype; re-casting would undo modules kept in fp32 on purpose.
        pipe.to(device=device, dtype=None if pipe.unet.dtype == dtype else dtype)
        pipe.set_progress_bar_config(disable=True)
        # SDPA (flash / memory-efficient kernels) for every attention, explicitly.
        pipe.unet.set_attn_processor(AttnProcessor2_0())  # type: ignore[no-untyped-call]
        pipe.vae.set_attn_processor(AttnProcessor2_0())  # type: ignore[no-untyped-call]
        loaded: dict[str, LoadedLora] = {}
        for name, lora_path in (loras or {}).items():
            loaded[name] = load_lora(pipe, name, lora_path)
        if loaded:
            pipe.disable_lora()
        # PEFT wraps to_q/to_k/to_v one by one; fusing them into to_qkv would silently drop the
        # LoRA deltas, so QKV fusion is only done on a LoRA-free pipeline.
        fused = bool(fuse_qkv and not loaded)
        if fused:
            pipe.fuse_qkv_projections()
        if channels_last:
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        if compile:
            compile_pipeline(pipe, device, compile_mode)
        optimizations = {
            "sdpa": True,
            "fused_qkv": fused,
            "channels_last": channels_last,
            "compile": compile_mode if compile else None,
        }
        return cls(
            pipe,
            kind=kind,
            model_id=model_id,
            model_format=model_format,
            weights_sha256=weights_sha256,
            device=device,
            dtype=dtype,
            loras=loaded,
            optimizations=optimizations,
            max_batch_size=max_batch_size,
        )

    # --- rendering ----------------------------------------------------------------------------

    def render(self, request: DiffusionRequest) -> DiffusionRender:
        """One request on its own; raises its RenderError."""
        outcome = self.render_batch([request])[0]
        if isinstance(outcome, RenderError):
            raise outcome
        return outcome

    def render_batch(self, requests: Sequence[DiffusionRequest]) -> list[DiffusionRender | RenderError]:
        """Render compatible requests together; one outcome per request, in order.

        Every item has its own generator, so its starting noise (and ancestral
        noise) depends only on its own seed, never on its neighbours. Frames that
        fail the quality gate are re-rendered together with the next derived seed.
        A problem with one item (bad LoRA name, gate exhausted) is that item's
        error; the others still render.
        """
        if not requests:
            return []
        key = requests[0].batch_key
        if any(request.batch_key != key for request in requests):
            raise InvalidRenderRequest("render_batch needs requests with one recipe and size; group them by batch_key")
        outcomes: list[DiffusionRender | RenderError | None] = [None] * len(requests)
        for index, request in enumerate(requests):
            try:
                request.validate()
                if request.recipe.lora is not None and request.recipe.lora not in self.loras:
                    raise InvalidDiffusionRecipe(
                        f"LoRA {request.recipe.lora!r} was not loaded at start-up; loaded: {sorted(self.loras)}"
                    )
            except RenderError as exc:
                outcomes[index] = exc
        pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
        reasons: dict[int, list[str]] = {i: [] for i in pending}
        attempt = 0
        while pending:
            seeds = {i: derive_seed(requests[i].seed, attempt) for i in pending}
            retry: list[int] = []
            for start in range(0, len(pending), self.max_batch_size):
                chunk = pending[start : start + self.max_batch_size]
                frames = self._generate([requests[i] for i in chunk], [seeds[i] for i in chunk])
                for row, i in enumerate(chunk):
                    request = requests[i]
                    gate = request.gate
                    if gate is not None:
                        report = check_quality(frames.floats[row], gate.thresholds)
                        if not report.ok:
                            reasons[i].extend(report.reasons)
                            if attempt + 1 < gate.max_attempts:
                                retry.append(i)
                            else:
                                outcomes[i] = QualityGateFailed(
                                    f"no acceptable frame in {gate.max_attempts} attempts (last: "
                                    f"{'; '.join(report.reasons)})",
                                    attempts=gate.max_attempts,
                                    seeds=tuple(derive_seed(request.seed, a) for a in range(gate.max_attempts)),
                                    reasons=tuple(reasons[i]),
                                )
                            continue
                    outcomes[i] = self._finish(
                        request, frames.pixels[row], seeds[i], attempt + 1, frames.seconds / len(chunk), len(chunk)
                    )
            pending = retry
            attempt += 1
        return [outcome for outcome in outcomes if outcome is not None]

    def warmup(self, recipe: DiffusionRecipe, width: int, height: int, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run each batch size once so kernels are selected (and compiled) before the first job."""
        for size in batch_sizes:
            requests = [DiffusionRequest("warm-up", "", seed, width, height, recipe, gate=None) for seed in range(size)]
            self._generate(requests, [r.seed for r in requests])

    def describe(self) -> dict[str, Any]:
        """The stack, as provenance records it: everything but the per-image fields."""
        return {
            "renderer": RENDERER,
            "renderer_version": RENDERER_VERSION,
            "model_id": self.model_id,
            "model_kind": self.kind,
            "model_format": self.model_format,
            "weights_sha256": self.weights_sha256,
            "device": self._device_name,
            "dtype": str(self.dtype).removeprefix("torch."),
            "optimizations": dict(self.optimizations),
            "libraries": dict(self._libraries),
        }

    def _generate(self, requests: Sequence[DiffusionRequest], seeds: Sequence[int]) -> _Frames:
        recipe = requests[0].recipe
        self._use_scheduler(recipe)
        self._use_lora(recipe)
        # CPU generators: the starting noise for a seed is the same on every device and GPU model.
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.pipe(
                prompt=[r.prompt for r in requests],
                negative_prompt=[r.negative_prompt for r in requests],
                num_inference_steps=recipe.steps,
                guidance_scale=recipe.guidance,
                width=requests[0].width,
                height=requests[0].height,
                generator=generators,
                output_type="pt",
            )
            images = output.images.float().permute(0, 2, 3, 1)
            # Float frames only go to the host when a gate will look at them (NaNs and all).
            gated = any(r.gate is not None for r in requests)
            floats = images.cpu().numpy() if gated else np.empty((0,), dtype=np.float32)
            pixels = (torch.nan_to_num(images, nan=0.0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        return _Frames(pixels=pixels, floats=floats, seconds=time.perf_counter() - started)

    def _use_scheduler(self, recipe: DiffusionRecipe) -> None:
        wanted = (recipe.scheduler, recipe.timestep_spacing)
        if wanted == self._scheduler_key:
            return
        if recipe.scheduler == "default" and recipe.timestep_spacing is None:
            self.pipe.scheduler = self._base_scheduler
        else:
            import diffusers

            class_name, overrides = SCHEDULERS.get(recipe.scheduler, (type(self._base_scheduler).__name__, {}))
            overrides = dict(overrides)
            if recipe.timestep_spacing is not None:
                overrides["timestep_spacing"] = recipe.timestep_spacing
            scheduler_cls = getattr(diffusers, class_name)
            self.pipe.scheduler = scheduler_cls.from_config(self._base_scheduler.config, **overrides)
        self._scheduler_key = wanted

    def _use_lora(self, recipe: DiffusionRecipe) -> None:
        wanted = None if recipe.lora is None else (recipe.lora, float(recipe.lora_scale))
        if wanted == self._active_lora or not self.loras:
            return
        if wanted is None:
            self.pipe.disable_lora()
        else:
            self.pipe.enable_lora()
            self.pipe.set_adapters([wanted[0]], adapter_weights=[wanted[1]])
        self._active_lora = wanted

    def _finish(
        self, request: DiffusionRequest, rgb: np.ndarray, seed: int, attempts: int, seconds: float, batch: int
    ) -> DiffusionRender:
        started = time.perf_counter()
        buffer = io.BytesIO()
        Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        png = buffer.getvalue()
        encode_seconds = time.perf_counter() - started
        result = RenderResult(
            png=png,
            width=request.width,
            height=request.height,
            file_sha256=hashlib.sha256(png).hexdigest(),
            pixel_sha256=pixel_sha256(rgb),
            renderer=RENDERER,
            renderer_version=RENDERER_VERSION,
            seed=seed,
            attempts=attempts,
            synth_seconds=seconds,
            encode_seconds=encode_seconds,
        )
        recipe = request.recipe
        scheduler = self.pipe.scheduler
        lora = self.loras.get(recipe.lora) if recipe.lora else None
        provenance = {
            **self.describe(),
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": seed,
            "requested_seed": request.seed,
            "attempts": attempts,
            "width": request.width,
            "height": request.height,
            "steps": recipe.steps,
            "guidance": recipe.guidance,
            "scheduler": {
                "name": recipe.scheduler,
                "class": type(scheduler).__name__,
                "timestep_spacing": scheduler.config.get("timestep_spacing"),
                "prediction_type": scheduler.config.get("prediction_type"),
                "use_karras_sigmas": scheduler.config.get("use_karras_sigmas"),
            },
            "lora": None
            if lora is None
            else {"name": lora.name, "file": lora.path.name, "sha256": lora.sha256, "scale": recipe.lora_scale},
            "noise": "cpu-generator-per-item",
            "batch_size": batch,
        }
        return DiffusionRender(result=result, provenance=provenance)
