"""Renderers a worker runs: StyleDNA + StyleParams + seed -> an accepted image, one file per renderer."""

from __future__ import annotations

from collections.abc import Mapping

from personalization.style import StyleDNA
from render.errors import InvalidRenderRequest
from render.renderer.base import DiffusionOptions, Rendered, Renderer, RendererName

__all__ = ["DiffusionOptions", "Rendered", "Renderer", "RendererName", "build_renderer"]


async def build_renderer(
    name: RendererName, collections: Mapping[str, StyleDNA], *, diffusion: DiffusionOptions | None = None
) -> Renderer:
    """The named renderer, ready for the worker's collections.

    "procedural" has nothing to load. "diffusion" loads its model once (off the event
    loop) and warms it for each collection's recipe before returning, so the first job
    does not pay for kernel selection or compilation.
    """
    if name == "procedural":
        from render.renderer.procedural import ProceduralRenderer

        return ProceduralRenderer()
    if name == "diffusion":
        if diffusion is None:
            raise InvalidRenderRequest("the diffusion renderer needs DiffusionOptions (a local model path)")
        from render.renderer.diffusion import BatchedDiffusionRenderer

        return await BatchedDiffusionRenderer.start(collections, diffusion)
    raise InvalidRenderRequest(f"unknown renderer {name!r}; known: procedural, diffusion")
