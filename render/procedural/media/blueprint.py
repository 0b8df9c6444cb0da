"""The blueprint medium: white line work and a drafting grid on cyanotype blue."""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas, line_width
from render.procedural.fields import F32, clip, gradient, isolines, magnitude
from render.procedural.layers import Layers
from render.procedural.palette import Palette, blend, broadcast_rgb, chroma
from render.procedural.paper import paper_texture
from render.procedural.style import Style


def paint_blueprint(layers: Layers, pal: Palette, cv: Canvas, rng: np.random.Generator, st: Style) -> np.ndarray:
    """Cyanotype drafting: white line work and a drafting grid on a deep blue ground."""
    bluest = min(pal.stops, key=lambda c: abs(((color.hue(c) - 0.6 + 0.5) % 1.0) - 0.5) - chroma(c) * 0.2)
    h = color.hue(bluest)
    h = h + (((0.6 - h + 0.5) % 1.0) - 0.5) * 0.6
    ground_rgb = color.with_hls(bluest, h=h, lightness=0.27, s=0.72)
    chalk_rgb = color.mix(pal.lightest, (0.9, 0.95, 1.0), 0.6)
    tooth = paper_texture(cv, rng, st.grain)
    rgb = broadcast_rgb(ground_rgb) * (F32(0.82) + layers.tone * F32(0.3) + tooth * F32(0.8))
    minor = max(4.0, 16.0 * cv.scale)
    gu = cv.u * F32(1.0 / (minor * cv.px))
    gv = cv.v * F32(1.0 / (minor * cv.px))
    grid_u = clip(F32(0.9) - np.abs(gu - np.rint(gu)) * F32(minor), 0.0, 1.0)
    grid_v = clip(F32(0.9) - np.abs(gv - np.rint(gv)) * F32(minor), 0.0, 1.0)
    major_u = clip(F32(1.2) - np.abs(gu * F32(0.2) - np.rint(gu * F32(0.2))) * F32(minor * 5), 0.0, 1.0)
    major_v = clip(F32(1.2) - np.abs(gv * F32(0.2) - np.rint(gv * F32(0.2))) * F32(minor * 5), 0.0, 1.0)
    grid = np.maximum(
        np.maximum(grid_u[None, :], grid_v[:, None]) * F32(0.16),
        np.maximum(major_u[None, :], major_v[:, None]) * F32(0.3),
    )
    tone = layers.tone
    gx, gy = gradient(tone, 1.0)
    # Levels offset from the motif's flat fills (multiples of 1/4), so fills stay ground.
    contours = isolines(tone + F32(0.027), np.maximum(magnitude(gx, gy), F32(0.002)), 14.0, line_width(cv, 0.8))
    strokes = np.maximum(grid, contours * F32(0.5))
    np.maximum(strokes, layers.line * F32(0.95), out=strokes)
    if layers.accent is not None:
        np.maximum(strokes, layers.accent, out=strokes)
    return blend(rgb, chalk_rgb, strokes * (F32(0.9) + tooth))
