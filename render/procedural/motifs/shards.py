"""The shards motif: shattered glass, radial and concentric cracks from one impact."""

from __future__ import annotations

import numpy as np

from render.procedural.canvas import Canvas, line_width
from render.procedural.fields import F32, clip, hash01
from render.procedural.layers import Layers
from render.procedural.noise import fbm, unit_vector
from render.procedural.style import Style


def draw_shards(cv: Canvas, rng: np.random.Generator, st: Style) -> Layers:
    """Shattered glass: radial and concentric cracks from an impact, faceted cells."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    fx, fy = rng.random() * 1.0 - 0.5, rng.random() * 1.0 - 0.5
    jag = fbm(rng, cv, 3.0 + 6.0 * e, 3)
    jag -= F32(0.5)
    jag *= F32(0.004 + 0.16 * e)
    # Each crack adds its own random weight to the cells on its positive side,
    # so the sum identifies a cell; the nearest crack gives the line work.
    cell_id = np.zeros((cv.h, cv.w), dtype=F32)
    crack = np.full((cv.h, cv.w), 1e3, dtype=F32)
    d = np.empty((cv.h, cv.w), dtype=F32)
    side = np.empty((cv.h, cv.w), dtype=bool)

    def cut(weight: float) -> None:
        np.greater(d, F32(0.0), out=side)
        np.add(cell_id, F32(weight), out=cell_id, where=side)
        np.abs(d, out=d)
        np.minimum(crack, d, out=crack)

    n_radial = 3 + (c * 7) // 10
    for k in range(n_radial):
        ax, ay = _direction((k + 0.3 + 0.4 * rng.random()) / n_radial * 0.5)
        ox = fx + (rng.random() - 0.5) * 0.08
        oy = fy + (rng.random() - 0.5) * 0.08
        np.add(((u - F32(ox)) * F32(-ay))[None, :], ((v - F32(oy)) * F32(ax))[:, None], out=d)
        d += jag
        cut(rng.random())
    dist = np.sqrt(((u - F32(fx)) ** 2)[None, :] + ((v - F32(fy)) ** 2)[:, None])
    dist += jag * F32(1.5)
    n_rings = 1 + c // 3
    for k in range(n_rings):
        r = 0.12 + (k + rng.random() * 0.6) * (1.5 / n_rings)
        np.subtract(dist, F32(r), out=d)
        cut(rng.random())
    for _ in range(c // 3):
        ax, ay = unit_vector(rng)
        ox, oy = rng.random() * 1.8 - 0.9, rng.random() * 1.8 - 0.9
        np.add(((u - F32(ox)) * F32(-ay))[None, :], ((v - F32(oy)) * F32(ax))[:, None], out=d)
        d += jag
        cut(rng.random())
    tone = hash01(cell_id, 12.9898)
    tone *= F32(4.999)
    np.floor(tone, out=tone)
    tone *= F32(0.25)
    # Facets: each cell tilts its own way, a linear gradient in a random direction.
    shade = hash01(cell_id, 78.233)
    shade -= F32(0.5)
    shade *= u[None, :]
    tilt = hash01(cell_id, 39.346)
    tilt -= F32(0.5)
    tilt *= v[:, None]
    shade += tilt
    shade *= F32(0.9)
    shade += F32(1.0)
    width = line_width(cv, 1.0 + 1.5 * e)
    crack *= F32(-1.0 / cv.px)
    crack += F32(width * 0.5 + 0.5)
    line = clip(crack, 0.0, 1.0, out=crack)
    glint = dist * dist
    glint *= F32(400.0)
    glint += F32(1.0)
    np.reciprocal(glint, out=glint)
    return Layers(tone=tone, line=line, accent=glint, shade=shade, flow=dist)


def _direction(turns: float) -> tuple[float, float]:
    """Unit vector at `turns` of a half circle, without libm (a rational parametrisation)."""
    t = (turns % 1.0) * 2.0 - 1.0  # tan of half the angle, in [-1, 1): angles -90..90 degrees
    return (1.0 - t * t) / (1.0 + t * t), 2.0 * t / (1.0 + t * t)
