"""Diffusion renderer: a local SD 1.5 / SDXL model, loaded once per worker, rendering micro-batches."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from PIL import Image

from render.errors import InvalidRenderRequest, QualityGateFailed, RenderError
from render.quality import QualityThresholds, check_quality, derive_seed
from render.result import RenderResult, pixel_sha256

if TYPE_CHECKING:
    from personalization.style import StyleDNA, StyleParams

log = logging.getLogger("personamint.render.diffusion")

RENDERER = "diffusion"
# Bump when anything here can change the pixels a given model, recipe and seed produce.
RENDERER_VERSION = "1.0.0"

# zlib level 1: the same trade as the procedural renderer (pinned once, served by a CDN).
PNG_COMPRESS_LEVEL = 1

ModelKind = Literal["sd", "sdxl"]
# model_index.json class names we know how to run, by the pipeline that runs them. SD-Turbo
# is an SD 2.1 (StableDiffusionPipeline), SDXL-Turbo and LCM-SDXL are SDXL; LCM-distilled
# SD 1.5 UNets carry time_cond_proj_dim, which StableDiffusionPipeline already feeds.
_KINDS: dict[str, ModelKind] = {
    "StableDiffusionPipeline": "sd",
    "LatentConsistencyModelPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
}
_KIND_ALIASES: dict[str, ModelKind] = {"sd": "sd", "sd15": "sd", "sd1": "sd", "sd2": "sd", "sdxl": "sdxl"}

# Recipe scheduler name -> (diffusers class, config overrides on top of the model's own).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_LORA_SUFFIXES = (".safetensors", ".bin")


class DiffusionUnavailable(RenderError):
    """The requested device or dtype cannot run here (no CUDA, half precision on CPU)."""

    code = "diffusion_unavailable"


class ModelNotFound(RenderError):
    """The configured model path (or a LoRA a collection names) does not exist; nothing is ever downloaded."""

    code = "diffusion_model_not_found"


class InvalidDiffusionModel(RenderError):
    """The model path exists but is not a loadable SD 1.5 / SDXL folder or single-file checkpoint."""

    code = "invalid_diffusion_model"


class InvalidDiffusionRecipe(RenderError):
    """A collection's [render.diffusion] table names an unknown key or a bad value."""

    code = "invalid_diffusion_recipe"


@dataclass(frozen=True)
class DiffusionRecipe:
    """How a collection's images are sampled: the DNA's [render.diffusion] table.

    Every field is part of the micro-batch key: only requests with equal
    recipes (and sizes) can share a forward pass.
    """

    scheduler: str = "default"  # "default" keeps the model's own; else a key of SCHEDULERS
    steps: int = 25
    guidance: float = 7.0  # <= 1 turns classifier-free guidance off (turbo / LCM)
    timestep_spacing: str | None = None  # "trailing" for few-step turbo models
    lora: str | None = None  # a LoRA the worker loaded at start-up, by name
    lora_scale: float = 1.0
    width: int | None = None  # override the DNA's [render] size for this model (SD 1.5 wants 512)
    height: int | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "render.diffusion") -> DiffusionRecipe:
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise InvalidDiffusionRecipe(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        recipe = cls(**dict(raw))
        recipe.validate(where)
        return recipe

    @classmethod
    def from_dna(cls, dna: StyleDNA) -> DiffusionRecipe:
        render = dna.raw.get("render", {})
        table = render.get("diffusion", {}) if isinstance(render, Mapping) else {}
        if not isinstance(table, Mapping):
            raise InvalidDiffusionRecipe(f"{dna.collection_id}: render.diffusion must be a table")
        return cls.from_mapping(table, f"{dna.collection_id}: render.diffusion")

    def validate(self, where: str = "render.diffusion") -> None:
        def bad(message: str) -> InvalidDiffusionRecipe:
            return InvalidDiffusionRecipe(f"{where}: {message}")

        if self.scheduler != "default" and self.scheduler not in SCHEDULERS:
            raise bad(f"scheduler {self.scheduler!r} is not one of {['default', *SCHEDULERS]}")
        if not _is_int(self.steps) or not 1 <= self.steps <= 200:
            raise bad(f"steps must be an integer in [1, 200], got {self.steps!r}")
        if not _is_number(self.guidance) or not 0 <= self.guidance <= 30:
            raise bad(f"guidance must be a number in [0, 30], got {self.guidance!r}")
        if self.timestep_spacing is not None and self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise bad(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {self.timestep_spacing!r}")
        if self.lora is not None and (not isinstance(self.lora, str) or not self.lora):
            raise bad(f"lora must be a non-empty name, got {self.lora!r}")
        if not _is_number(self.lora_scale) or not -4 <= self.lora_scale <= 4:
            raise bad(f"lora_scale must be a number in [-4, 4], got {self.lora_scale!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or not 64 <= value <= 4096 or value % 8):
                raise bad(f"{name} must be a multiple of 8 in [64, 4096], got {value!r}")


@dataclass(frozen=True)
class QualityGate:
    """Re-render with derived seeds until a frame passes check_quality, at most max_attempts renders."""

    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    max_attempts: int = 3


@dataclass(frozen=True)
class DiffusionRequest:
    """One image to render: everything that decides its pixels, plus the gate it must pass."""

    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    recipe: DiffusionRecipe = field(default_factory=DiffusionRecipe)
    gate: QualityGate | None = field(default_factory=QualityGate)  # None: no gate (benchmarks)

    @property
    def batch_key(self) -> tuple[DiffusionRecipe, int, int]:
        return (self.recipe, self.width, self.height)

    @classmethod
    def for_job(
        cls, dna: StyleDNA, params: StyleParams, seed: int, *, max_attempts: int = 3, gate: bool = True
    ) -> DiffusionRequest:
        """The request a pipeline job makes: prompt and negatives from the DNA, gate from its [quality] table."""
        recipe = DiffusionRecipe.from_dna(dna)
        raw_quality = dna.raw.get("quality", {})
        quality = dict(raw_quality) if isinstance(raw_quality, Mapping) else {}
        # [quality] holds the thresholds plus the attempt budget, as the procedural path reads it.
        attempts = quality.pop("max_attempts", max_attempts)
        if not _is_int(attempts) or attempts < 1:
            raise InvalidRenderRequest(f"{dna.collection_id}: quality.max_attempts must be a positive integer")
        thresholds = QualityThresholds.from_mapping(quality)
        # Newer DNAs compose the negative prompt themselves (negatives + deny list, capped).
        compose_negative = getattr(dna, "negative_prompt", None)
        negative = compose_negative() if callable(compose_negative) else ", ".join(dna.negative_prompts)
        return cls(
            prompt=dna.prompt(params),
            negative_prompt=negative,
            seed=seed,
            width=recipe.width or dna.width,
            height=recipe.height or dna.height,
            recipe=recipe,
            gate=QualityGate(thresholds, attempts) if gate else None,
        )

    def validate(self) -> None:
        if not _is_int(self.seed) or not 0 <= self.seed < 2**64:
            raise InvalidRenderRequest(f"seed must be an integer in [0, 2**64), got {self.seed!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or not 64 <= value <= 4096 or value % 8:
                raise InvalidRenderRequest(f"{name} must be a multiple of 8 in [64, 4096], got {value!r}")
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise InvalidRenderRequest("prompt and negative_prompt must be strings")
        if self.gate is not None and self.gate.max_attempts < 1:
            raise InvalidRenderRequest(f"gate.max_attempts must be at least 1, got {self.gate.max_attempts}")
        self.recipe.validate()


@dataclass(frozen=True)
class DiffusionRender:
    """A rendered image and the provenance that lets the same stack render it again."""

    result: RenderResult
    provenance: dict[str, Any]


@dataclass(frozen=True)
class LoadedLora:
    name: str
    path: Path
    sha256: str


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
        self._libraries = _library_versions()
        self._device_name = _device_name(device)

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
        elif path.suffix in _SINGLE_FILE_SUFFIXES:
            model_format = "single_file"
            if config_path is None:
                raise InvalidDiffusionModel(
                    f"{path} is a single-file checkpoint: set PERSONAMINT_MODEL_CONFIG_PATH to a folder with the "
                    "diffusers configs and tokenizers of its architecture (they cannot be downloaded here)"
                )
            config_dir = Path(config_path).expanduser()
        else:
            raise InvalidDiffusionModel(f"{path} is neither a diffusers folder nor a {_SINGLE_FILE_SUFFIXES} file")
        kind = _model_kind(config_dir, model_kind)
        pipe = _load_pipeline(kind, path, config_dir, model_format, torch_dtype)
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
            loaded[name] = _load_lora(pipe, name, lora_path)
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
            _compile(pipe, device, compile_mode)
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


# --- helpers -----------------------------------------------------------------------------------


def resolve_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """Validate an explicit device/dtype pair: fp16/bf16 on CUDA, fp32 on CPU; "auto" picks the best."""
    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        raise DiffusionUnavailable(f"unknown device {device!r}") from exc
    if torch_device.type == "cuda":
        if not torch.cuda.is_available():
            raise DiffusionUnavailable(f"device {device!r} asked for, but this torch sees no CUDA GPU")
        if dtype == "auto":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    elif torch_device.type == "cpu":
        if dtype == "auto":
            dtype = "float32"
        if dtype != "float32":
            raise DiffusionUnavailable(
                f"dtype {dtype} on CPU: half precision there is slow or unsupported; use float32"
            )
    else:
        raise DiffusionUnavailable(f"device type {torch_device.type!r} is not supported (cuda or cpu)")
    if dtype not in _DTYPES:
        raise DiffusionUnavailable(f"dtype {dtype!r} is not one of {[*_DTYPES, 'auto']}")
    return torch_device, _DTYPES[dtype]


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_tree(root: Path) -> str:
    """Hash of a model folder: sha256 over sorted "relative/path<TAB>file sha256" lines.

    Configs are included on purpose (a scheduler config changes the pixels);
    hidden files and folders (.git, .cache) are not.
    """
    lines = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            lines.append(f"{relative.as_posix()}\t{sha256_file(path)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def _model_kind(config_dir: Path, requested: str) -> ModelKind:
    index = config_dir / "model_index.json"
    if not index.is_file():
        raise InvalidDiffusionModel(f"{config_dir} has no model_index.json: not a diffusers model folder")
    try:
        class_name = json.loads(index.read_text()).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise InvalidDiffusionModel(f"{index}: {exc}") from exc
    if requested != "auto":
        if requested not in _KIND_ALIASES:
            raise InvalidDiffusionModel(f"model kind {requested!r} is not one of {['auto', *_KIND_ALIASES]}")
        return _KIND_ALIASES[requested]
    if class_name not in _KINDS:
        raise InvalidDiffusionModel(
            f"{index}: pipeline {class_name!r} is not supported (known: {sorted(_KINDS)}); "
            "set PERSONAMINT_MODEL_KIND=sd|sdxl to force one"
        )
    return _KINDS[class_name]


def _load_pipeline(kind: ModelKind, path: Path, config_dir: Path, model_format: str, dtype: torch.dtype) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    pipeline_cls: Any = StableDiffusionXLPipeline if kind == "sdxl" else StableDiffusionPipeline
    # The safety checker is a second model and a policy choice; collections' negative prompts and
    # the quality gate are this service's filter, so it is never loaded.
    extra: dict[str, Any] = {} if kind == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
    try:
        if model_format == "single_file":
            return pipeline_cls.from_single_file(
                str(path), config=str(config_dir), dtype=dtype, local_files_only=True, **extra
            )
        return pipeline_cls.from_pretrained(str(path), dtype=dtype, local_files_only=True, **extra)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as exc:
        raise InvalidDiffusionModel(f"cannot load {kind} model from {path}: {type(exc).__name__}: {exc}") from exc


def _load_lora(pipe: Any, name: str, path: Path) -> LoadedLora:
    from diffusers.utils.constants import USE_PEFT_BACKEND

    if not USE_PEFT_BACKEND:
        raise DiffusionUnavailable(f"LoRA {name!r}: diffusers loads LoRAs through peft, which is not installed")
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.suffix in _LORA_SUFFIXES)
        if len(candidates) != 1:
            raise InvalidDiffusionModel(f"LoRA folder {path} must hold exactly one weights file, has {candidates}")
        path = candidates[0]
    try:
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise InvalidDiffusionModel(f"cannot load LoRA {name!r} from {path}: {type(exc).__name__}: {exc}") from exc
    return LoadedLora(name=name, path=path, sha256=sha256_file(path))


def _compile(pipe: Any, device: torch.device, mode: str) -> None:
    if device.type == "cuda":
        # The settings diffusers' SDXL speed-up guide measured best for UNets.
        import torch._inductor.config as inductor

        inductor.conv_1x1_as_mm = True
        inductor.coordinate_descent_tuning = True
        inductor.epilogue_fusion = False
        inductor.coordinate_descent_check_all_directions = True
    # Compiled in place (nn.Module.compile) so the pipeline keeps its own module objects;
    # each batch size is one static-shape graph, which warmup() builds ahead of traffic.
    pipe.unet.compile(mode=mode, fullgraph=True, dynamic=False)
    pipe.vae.decoder.compile(mode=mode, fullgraph=True, dynamic=False)


def _library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("diffusers", "transformers", "peft", "safetensors", "numpy", "pillow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["cuda"] = torch.version.cuda
    cudnn = torch.backends.cudnn
    versions["cudnn"] = str(cudnn.version()) if cudnn.is_available() else None  # type: ignore[no-untyped-call]
    return versions


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"
