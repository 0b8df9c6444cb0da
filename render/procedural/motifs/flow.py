"""The flow motif: streamlines of a domain-warped stream function."""

from __future__ import annotations

import numpy as np

from render.procedural.canvas import Canvas
from render.procedural.fields import F32, gradient, isolines, magnitude, normalize
from render.procedural.layers import Layers
from render.procedural.noise import fbm, fbm_2d, unit_vector
from render.procedural.style import Style


def draw_flow(cv: Canvas, rng: np.random.Generator, st: Style) -> Layers:
    """Streamlines of a domain-warped stream function: marbled, calligraphic currents."""
    lo = cv.lo(4)
    x, y = lo.grids()
    e, c = st.energy, st.complexity
    freq = 0.7 + 1.5 * e
    warp = 0.15 + 1.5 * e
    qx = fbm_2d(rng, x, y, freq, 3) - F32(0.5)
    qy = fbm_2d(rng, x, y, freq, 3) - F32(0.5)
    wx = x + qx * F32(warp)
    wy = y + qy * F32(warp)
    if e > 0.45:
        rx = fbm_2d(rng, wx, wy, freq * 1.7, 2) - F32(0.5)
        ry = fbm_2d(rng, wx, wy, freq * 1.7, 2) - F32(0.5)
        wx += rx * F32(warp * 0.6)
        wy += ry * F32(warp * 0.6)
    dx, dy = unit_vector(rng)
    # A dominant drift keeps streamlines long instead of closing into blobs;
    # energy hands more of the field to turbulence.
    drift = x * F32(dx) + y * F32(dy)
    psi = fbm_2d(rng, wx, wy, 0.8 + 0.4 * e, 2 + c // 3, 0.45 + 0.1 * e)
    psi = psi * F32(0.6 + 1.4 * e) + drift * F32(0.45)
    psi = normalize(psi)
    gx, gy = gradient(psi, lo.step)
    grad = cv.upsample(magnitude(gx, gy))
    tone = cv.upsample(psi)
    pen = fbm(rng, cv, 2.5, 2)
    width = np.maximum((pen * F32(2.2) + F32(0.25)) * F32(1.7 * cv.scale), F32(0.9))
    line = isolines(tone, grad, 7 + 3.2 * c, width)
    return Layers(tone=tone, line=line, flow=tone)
