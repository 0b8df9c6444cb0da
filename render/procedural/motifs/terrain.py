"""The terrain motif: a topographic survey of ridged relief, contours and a still sea."""

from __future__ import annotations

import numpy as np

from render.procedural.canvas import Canvas, line_width
from render.procedural.fields import (
    F32,
    clip,
    gradient,
    isolines,
    magnitude,
    normalize,
    smoothstep,
)
from render.procedural.layers import Layers
from render.procedural.noise import fbm, fbm_2d, lattice, noise_2d
from render.procedural.style import Style


def draw_terrain(cv: Canvas, rng: np.random.Generator, st: Style) -> Layers:
    """A topographic survey: ridged relief, hillshade, contour lines and a still sea."""
    e, c = st.energy, st.complexity
    lo = cv.lo(4)
    x, y = lo.grids()
    qx = fbm_2d(rng, x, y, 0.9, 2) - F32(0.5)
    qy = fbm_2d(rng, x, y, 0.9, 2) - F32(0.5)
    wx = x + qx * F32(0.35 + 0.5 * e)
    wy = y + qy * F32(0.35 + 0.5 * e)
    relief = np.zeros(x.shape, dtype=F32)
    amp, freq = 1.0, 0.9 + 0.9 * e
    for _ in range(3 + c // 3):
        n = noise_2d(lattice(rng), wx * F32(freq) + F32(rng.random() * 99), wy * F32(freq) + F32(rng.random() * 99))
        ridge = F32(1.0) - np.abs(n * F32(2.0) - F32(1.0))
        relief += ridge * ridge * F32(amp)
        amp *= 0.42 + 0.2 * e
        freq *= 2.05
    cx, cy = rng.random() - 0.5, rng.random() - 0.5
    dome = ((lo.u - F32(cx)) ** 2)[None, :] + ((lo.v - F32(cy)) ** 2)[:, None]
    relief -= dome * F32(0.6)
    relief = normalize(relief)
    relief = relief * relief * (F32(3.0) - F32(2.0) * relief) * F32(0.5) + relief * F32(0.5)
    gx, gy = gradient(relief, lo.step)
    height = cv.upsample(relief)
    height += (fbm(rng, cv, 24.0, 2) - F32(0.5)) * F32(0.012 + 0.03 * e)
    sgx = cv.upsample(gx)
    sgy = cv.upsample(gy)
    grad = magnitude(sgx, sgy)
    sea = 0.2 + 0.12 * rng.random()
    land = smoothstep(sea - 0.004, sea + 0.004, height)
    count = 10 + 3.5 * c
    contour = isolines(height, grad, count, line_width(cv, 0.9))
    index = isolines(height, grad, count / 5.0, line_width(cv, 2.2))
    line = np.maximum(contour * F32(0.6), index) * land
    coast = isolines(height - F32(sea), grad, 1.0, line_width(cv, 2.6))
    coast *= (np.abs(height - F32(sea)) < F32(0.1)).astype(F32)
    np.maximum(line, coast, out=line)
    k = F32(0.5 * 1024 / (1 + 3 * e) * cv.scale)
    shade = F32(1.0) + (sgx + sgy) * k * F32(-0.7)
    shade = clip(shade, 0.45, 1.5) * land + (F32(1.0) - land)
    tone = height * land + (F32(0.12) + height * F32(0.3)) * (F32(1.0) - land)
    return Layers(tone=tone, line=line, shade=shade, flow=height)
