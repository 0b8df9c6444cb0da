"""Loading a local model: device and dtype, architecture, pipeline, LoRAs, compilation, weight hashes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from render.diffusion.errors import DiffusionUnavailable, InvalidDiffusionModel

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
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_LORA_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class LoadedLora:
    """A LoRA loaded into the pipeline at start-up, with the hash of its weights file."""

    name: str
    path: Path
    sha256: str


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


def read_model_kind(config_dir: Path, requested: str) -> ModelKind:
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


def load_pipeline(kind: ModelKind, path: Path, config_dir: Path, model_format: str, dtype: torch.dtype) -> Any:
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


def load_lora(pipe: Any, name: str, path: Path) -> LoadedLora:
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


def compile_pipeline(pipe: Any, device: torch.device, mode: str) -> None:
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
