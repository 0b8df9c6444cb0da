"""Deterministic CPU renderer: StyleParams + palette + seed -> a generative artwork.

A frame is a motif's layers (motifs/), mirror-folded (symmetry.py), painted in a
medium (media/) with the mood-graded palette (palette.py), stamped with a seal
where the params carry one (seal.py), then finished (finish.py); render.py puts
the stages together and encodes the PNG.
"""

from render.procedural.render import (
    DEFAULT_PNG_COMPRESS_LEVEL,
    RENDERER,
    RENDERER_VERSION,
    encode_png,
    render_procedural,
    render_procedural_gated,
    synthesize,
)
from render.procedural.style import MEDIA, MOODS, MOTIFS, resolve_choice

__all__ = [
    "DEFAULT_PNG_COMPRESS_LEVEL",
    "MEDIA",
    "MOODS",
    "MOTIFS",
    "RENDERER",
    "RENDERER_VERSION",
    "encode_png",
    "render_procedural",
    "render_procedural_gated",
    "resolve_choice",
    "synthesize",
]
