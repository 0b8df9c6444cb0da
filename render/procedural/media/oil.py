"""The oil medium: loaded brush strokes dragged along the composition, ridged edges."""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas
from render.procedural.fields import F32, blur, clip, gradient, hash01, normalize, wave
from render.procedural.layers import Layers
from render.procedural.noise import fbm, fbm_2d, unit_vector
from render.procedural.palette import Palette, blend
from render.procedural.style import Style


def paint_oil(layers: Layers, pal: Palette, cv: Canvas, rng: np.random.Generator, st: Style) -> np.ndarray:
    """Loaded brush on canvas: strokes dragged along the flow, each its own mix, ridged edges."""
    flow = layers.flow if layers.flow is not None else layers.tone
    lo = cv.lo(4)
    drift = cv.upsample(fbm_2d(rng, *lo.grids(), 1.1, 2))
    # A blurred guide keeps strokes a brush-width apart even where the motif is steep.
    guide = blur(normalize(flow), max(2, round(10 * cv.scale)))
    guide *= F32(0.2)
    drift *= F32(0.3)
    guide += drift
    # A dominant slant keeps strokes long and roughly parallel instead of closing into whorls.
    dx, dy = unit_vector(rng)
    guide += (cv.u * F32(dx))[None, :] + (cv.v * F32(dy))[:, None]
    lanes = 12.0 + 1.2 * st.complexity
    # Staggering lanes patch by patch breaks endless streaks into separate strokes.
    patch = np.floor(fbm(rng, cv, 8.0 + 6.0 * st.energy, 1) * F32(5.0))
    g = guide * F32(lanes)
    g += patch * F32(0.43)
    lane = np.floor(g)
    across = g - lane
    jitter = hash01(lane * F32(0.173) + patch * F32(0.619), 12.9898)
    jitter -= F32(0.5)
    tone = blur(layers.tone, max(1, round(3 * cv.scale)))
    tone += jitter * F32(0.1 + 0.12 * st.energy)
    clip(tone, 0.0, 1.0, out=tone)
    rgb = pal.map(tone)
    lines = blur(layers.line, 2)
    lines *= F32(0.55)
    rgb = blend(rgb, color.scale(pal.darkest, 0.6), lines)
    # Paint piles up at a stroke's edges and the bristles score it lengthwise.
    height = across * (F32(1.0) - across)
    height *= F32(4.0)
    np.sqrt(height, out=height)
    height += wave(g * F32(9.0)) * F32(0.12)
    gx, gy = gradient(height, 1.0)
    gx += gy
    gx *= F32(-0.9 * cv.scale)
    relief = clip(gx, -0.18, 0.18, out=gx)
    spec = clip(relief - F32(0.1), 0.0, 1.0)
    spec *= F32(1.6)
    relief += F32(1.0)
    weave = wave(cv.u * F32(1.0 / (3.0 * cv.px)))[None, :] * wave(cv.v * F32(1.0 / (3.0 * cv.px)))[:, None]
    weave *= F32(0.02 + 0.08 * st.grain)
    weave += F32(1.0)
    relief *= weave
    if layers.shade is not None:
        # The motif's modelling shows through the paint, but the brushwork leads.
        relief *= layers.shade * F32(0.35) + F32(0.65)
    rgb *= relief[None]
    rgb += spec[None]
    return rgb
