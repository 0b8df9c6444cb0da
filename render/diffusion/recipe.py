"""How a collection's images are sampled: scheduler, steps, guidance, LoRA and size, validated."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from render.diffusion.errors import InvalidDiffusionRecipe

if TYPE_CHECKING:
    from personalization.style import StyleDNA

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
        if not is_int(self.steps) or not 1 <= self.steps <= 200:
            raise bad(f"steps must be an integer in [1, 200], got {self.steps!r}")
        if not is_number(self.guidance) or not 0 <= self.guidance <= 30:
            raise bad(f"guidance must be a number in [0, 30], got {self.guidance!r}")
        if self.timestep_spacing is not None and self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise bad(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {self.timestep_spacing!r}")
        if self.lora is not None and (not isinstance(self.lora, str) or not self.lora):
            raise bad(f"lora must be a non-empty name, got {self.lora!r}")
        if not is_number(self.lora_scale) or not -4 <= self.lora_scale <= 4:
            raise bad(f"lora_scale must be a number in [-4, 4], got {self.lora_scale!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or not 64 <= value <= 4096 or value % 8):
                raise bad(f"{name} must be a multiple of 8 in [64, 4096], got {value!r}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)
