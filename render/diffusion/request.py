"""One image to render: prompt, seed, size, recipe and the quality gate it must pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from render.diffusion.recipe import DiffusionRecipe, is_int
from render.errors import InvalidRenderRequest
from render.quality import QualityThresholds

if TYPE_CHECKING:
    from personalization.style import StyleDNA, StyleParams


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
        if not is_int(attempts) or attempts < 1:
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
        if not is_int(self.seed) or not 0 <= self.seed < 2**64:
            raise InvalidRenderRequest(f"seed must be an integer in [0, 2**64), got {self.seed!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not is_int(value) or not 64 <= value <= 4096 or value % 8:
                raise InvalidRenderRequest(f"{name} must be a multiple of 8 in [64, 4096], got {value!r}")
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise InvalidRenderRequest("prompt and negative_prompt must be strings")
        if self.gate is not None and self.gate.max_attempts < 1:
            raise InvalidRenderRequest(f"gate.max_attempts must be at least 1, got {self.gate.max_attempts}")
        self.recipe.validate()
