"""The procedural renderer as a worker runs it: behind the collection's quality gate, off the event loop."""

from __future__ import annotations

import asyncio

from personalization.style import StyleDNA, StyleParams
from render.procedural import render_procedural_gated
from render.quality import QualityThresholds
from render.renderer.base import Rendered
from render.result import RenderResult


def render_for_collection(dna: StyleDNA, params: StyleParams, seed: int) -> RenderResult:
    """Render behind the quality gate; thresholds and attempts come from the DNA's [quality] table."""
    quality = dict(dna.raw.get("quality", {}))
    max_attempts = int(quality.pop("max_attempts", 3))
    return render_procedural_gated(
        params,
        dna.palettes[params.palette],
        seed,
        dna.width,
        dna.height,
        thresholds=QualityThresholds.from_mapping(quality),
        max_attempts=max_attempts,
    )


class ProceduralRenderer:
    """The default renderer: CPU only, nothing to load, and no provenance beyond the RenderResult."""

    async def render(self, dna: StyleDNA, params: StyleParams, seed: int) -> Rendered:
        return Rendered(await asyncio.to_thread(render_for_collection, dna, params, seed))

    async def aclose(self) -> None:
        """Nothing to release: each render is self-contained."""
