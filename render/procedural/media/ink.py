"""The ink medium: pen and brush on paper with hatching and one spot colour."""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas
from render.procedural.fields import F32, clip, smoothstep
from render.procedural.layers import Layers
from render.procedural.noise import fbm
from render.procedural.palette import Palette, blend, broadcast_rgb
from render.procedural.paper import paper_texture
from render.procedural.style import Style


def paint_ink(layers: Layers, pal: Palette, cv: Canvas, rng: np.random.Generator, st: Style) -> np.ndarray:
    """Pen and brush on paper: solid blacks, engraved hatching, open paper, one spot colour."""
    paper_rgb = color.mix(pal.lightest, (0.97, 0.95, 0.9), 0.65)
    ink_rgb = color.scale(pal.darkest, 0.35)
    spots = [c for c in pal.vivid if color.luminance(c) < 0.8] or list(pal.vivid)
    tooth = paper_texture(cv, rng, st.grain)
    tone = layers.tone + tooth * F32(0.25)
    rgb = np.empty((3, cv.h, cv.w), dtype=F32)
    rgb[:] = broadcast_rgb(paper_rgb)
    rgb *= F32(1.0) + tooth * F32(0.5)
    # The top of the tone range prints as a flat second plate, like a spot-colour comic.
    rgb = blend(rgb, spots[0], smoothstep(0.66, 0.69, tone) * F32(0.92))
    period = max(3.0, 6.0 * cv.scale)
    dark = clip((F32(0.4) - tone) * F32(1.0 / 0.25), 0.0, 1.0)
    diag = (cv.u[None, :] + cv.v[:, None]) * F32(1.0 / (period * cv.px * 1.4142))
    hatch = clip(dark * F32(period * 0.45) + F32(0.5) - np.abs(diag - np.rint(diag)) * F32(period), 0.0, 1.0)
    anti = (cv.u[None, :] - cv.v[:, None]) * F32(1.0 / (period * cv.px * 1.4142))
    dark2 = clip(dark * F32(2.0) - F32(1.0), 0.0, 1.0)
    cross = clip(dark2 * F32(period * 0.45) + F32(0.5) - np.abs(anti - np.rint(anti)) * F32(period), 0.0, 1.0)
    # Dry brush: the loaded brush skips over the paper's tooth at the edges of a stroke.
    dry = fbm(rng, cv, 45.0, 2)
    solid = smoothstep(0.0, 0.05, F32(0.13) - tone + (dry - F32(0.5)) * F32(0.08))
    strokes = np.maximum(np.maximum(hatch, cross) * F32(0.85), solid)
    np.maximum(strokes, layers.line * (F32(0.6) + smoothstep(0.3, 0.5, dry) * F32(0.4)), out=strokes)
    if layers.accent is not None:
        np.maximum(strokes, clip(layers.accent * F32(1.6) - F32(0.3), 0.0, 1.0), out=strokes)
    return blend(rgb, ink_rgb, strokes)
