"""What a worker renders with: the Renderer protocol, what it returns, and the diffusion model's options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from personalization.style import StyleDNA, StyleParams
from render.result import RenderResult

RendererName = Literal["procedural", "diffusion"]


@dataclass(frozen=True)
class Rendered:
    """An accepted image and what its renderer adds to the token's provenance."""

    result: RenderResult
    # The diffusion stack (model, weights hash, scheduler, steps, libraries, device), pinned
    # verbatim as the metadata's render.diffusion object, so it stays a JSON mapping; empty
    # for the procedural renderer, whose RenderResult alone is enough to replay it.
    provenance: Mapping[str, Any] = field(default_factory=dict)


class Renderer(Protocol):
    """StyleParams + seed -> an image that passed the collection's quality gate."""

    async def render(self, dna: StyleDNA, params: StyleParams, seed: int) -> Rendered: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class DiffusionOptions:
    """Where the local model is and how to run it; one model per worker, shared by every collection."""

    model_path: Path  # a diffusers folder or a single-file checkpoint; never downloaded
    model_config_path: Path | None = None  # the config folder a single-file checkpoint needs
    model_kind: str = "auto"  # sd | sdxl | auto (read from model_index.json)
    model_id: str | None = None  # recorded in provenance; defaults to the path's name
    lora_dir: Path | None = None  # where LoRAs named by collections live, as <name>.safetensors
    device: str = "cuda"
    dtype: str = "auto"
    compile: bool = False
    compile_mode: str = "default"
    batch_size: int = 4  # most renders sharing one forward pass
    batch_wait_ms: float = 5.0  # longest a render waits for company before running alone
