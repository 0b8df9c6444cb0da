"""The grid motif: Truchet tiles of quarter-arc ribbons over a coloured grid."""

from __future__ import annotations

import numpy as np

from render.procedural.canvas import Canvas, line_width
from render.procedural.fields import F32, clip, isolines
from render.procedural.layers import Layers
from render.procedural.noise import noise_1d
from render.procedural.style import Style


def draw_grid(cv: Canvas, rng: np.random.Generator, st: Style) -> Layers:
    """Truchet tiles: quarter-arc ribbons weaving across a coloured grid, bent by energy."""
    e, c = st.energy, st.complexity
    n = 2 + c
    cell = 2.0 / n
    amp = cell * (0.05 + 0.9 * e)
    bend_u = (noise_1d(rng, cv.v, 0.8 + 1.2 * e) - F32(0.5)) * F32(amp)
    bend_v = (noise_1d(rng, cv.u, 0.8 + 1.2 * e) - F32(0.5)) * F32(amp)
    gx = (cv.u[None, :] + bend_u[:, None] + F32(8.0)) * F32(1.0 / cell)
    gy = (cv.v[:, None] + bend_v[None, :] + F32(8.0)) * F32(1.0 / cell)
    fx0 = np.floor(gx)
    fy0 = np.floor(gy)
    fx = gx - fx0
    fy = gy - fy0
    table = 64
    idx = (fy0.astype(np.intp) & (table - 1)) * table + (fx0.astype(np.intp) & (table - 1))
    flips = (rng.random(table * table) < 0.5).astype(F32)
    tone_a = rng.integers(0, 5, table * table).astype(F32) * F32(0.25)
    tone_b = rng.integers(0, 5, table * table).astype(F32) * F32(0.25)
    flip = np.take(flips, idx)
    fx += flip * (F32(1.0) - F32(2.0) * fx)
    r1 = np.sqrt(fx * fx + fy * fy)
    ox = F32(1.0) - fx
    oy = F32(1.0) - fy
    r2 = np.sqrt(ox * ox + oy * oy)
    ra = np.minimum(r1, r2)
    cell_px = cell / cv.px
    inside = clip((F32(0.5) - ra) * F32(cell_px) + F32(0.5), 0.0, 1.0)
    ta = np.take(tone_a, idx)
    tb = np.take(tone_b, idx)
    tone = tb + (ta - tb) * inside
    strands = 2 + c // 3
    band = np.abs(ra - F32(0.5))
    line = isolines(ra - F32(0.5), 1.0 / cell_px, strands / 0.5, line_width(cv, 1.2) + cell_px * 0.01)
    line *= clip((F32(0.27) - band) * F32(cell_px), 0.0, 1.0)
    shade = F32(1.06) - band * F32(0.5)
    flow = (gx + gy) * F32(0.05)
    return Layers(tone=tone, line=line, shade=shade, flow=flow)
