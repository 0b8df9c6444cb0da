"""build_renderer: the renderer a worker names, and the procedural one's gate and provenance."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from personalization.style import StyleParams, load_style_dna
from render.errors import InvalidRenderRequest
from render.procedural import MEDIA, MOTIFS, render_procedural_gated
from render.procedural.registry import MEDIUM_BY_NAME, MOTIF_BY_NAME
from render.renderer import Rendered, build_renderer

ROOT = Path(__file__).resolve().parents[3]
DNA = load_style_dna(ROOT / "collections" / "default.toml")
PARAMS = StyleParams(
    palette="ledger",
    medium="ink",
    motif="terrain",
    mood="austere",
    complexity=4,
    energy=35,
    symmetry=20,
    grain=30,
    hue_shift=-8,
)


def test_every_named_treatment_has_its_implementation_in_order() -> None:
    # Order matters: an unknown name hashes to a position in MOTIFS / MEDIA.
    assert tuple(MOTIF_BY_NAME) == MOTIFS
    assert tuple(MEDIUM_BY_NAME) == MEDIA


def test_procedural_renderer_renders_the_gated_frame_without_extra_provenance() -> None:
    async def run() -> Rendered:
        renderer = await build_renderer("procedural", {"default": DNA})
        try:
            return await renderer.render(DNA, PARAMS, 11)
        finally:
            await renderer.aclose()

    rendered = asyncio.run(run())
    expected = render_procedural_gated(PARAMS, DNA.palettes["ledger"], 11, DNA.width, DNA.height)
    assert rendered.result.pixel_sha256 == expected.pixel_sha256
    assert rendered.result.renderer == "procedural"
    assert dict(rendered.provenance) == {}


def test_diffusion_needs_its_options_and_unknown_names_are_refused() -> None:
    with pytest.raises(InvalidRenderRequest, match="DiffusionOptions"):
        asyncio.run(build_renderer("diffusion", {"default": DNA}))
    with pytest.raises(InvalidRenderRequest, match="unknown renderer"):
        asyncio.run(build_renderer("gan", {"default": DNA}))  # type: ignore[arg-type]
