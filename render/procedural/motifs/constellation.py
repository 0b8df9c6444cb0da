"""The constellation motif: a star chart of nebulae, clustered stars and joining lines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from render.procedural.canvas import Canvas, line_width, pixel_window
from render.procedural.fields import F32, clip, smoothstep
from render.procedural.layers import Layers
from render.procedural.noise import fbm, unit_vector
from render.procedural.style import Style


def draw_constellation(cv: Canvas, rng: np.random.Generator, st: Style) -> Layers:
    """A star chart: nebula clouds, clustered stars and the lines that join them."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    nebula = fbm(rng, cv, 1.3 + 1.5 * e, 5, 0.55)
    bx, by = unit_vector(rng)
    band = np.abs((u * F32(bx))[None, :] + (v * F32(by))[:, None] + (nebula - F32(0.5)) * F32(0.6))
    milky = F32(1.0) / (F32(1.0) + band * band * F32(9.0))
    # Mid-range tone: paper media show a pale sky, light media a faint nebula.
    clouds = smoothstep(0.42, 0.72, nebula)
    tone = clouds * (milky * F32(0.3) + F32(0.22))
    tone += milky * F32(0.18)
    tone += F32(0.3)
    line = np.zeros((cv.h, cv.w), dtype=F32)
    accent = np.zeros((cv.h, cv.w), dtype=F32)
    n_stars = 9 + 6 * c
    clusters = [(rng.random() * 1.6 - 0.8, rng.random() * 1.6 - 0.8) for _ in range(1 + c // 3)]
    spread = 0.25 + 0.35 * e
    pts = []
    for _ in range(n_stars):
        cx, cy = clusters[int(rng.integers(0, len(clusters)))]
        px = cx + (rng.random() + rng.random() - 1.0) * spread * 1.6
        py = cy + (rng.random() + rng.random() - 1.0) * spread * 1.6
        pts.append((min(0.97, max(-0.97, px)), min(0.97, max(-0.97, py))))
    edges = _spanning_tree(pts) + _extra_edges(pts, rng, c)
    for a, b in edges:
        _draw_segment(line, cv, pts[a], pts[b], line_width(cv, 1.2 + 1.0 * e))
    for i, (x, y) in enumerate(pts):
        brightness = rng.random()
        size = max(0.8, (1.5 + 4.0 * brightness * brightness) * cv.scale)
        spikes = i % 3 == 0 and e > 0.2
        _draw_star(accent, cv, x, y, size, (6.0 + 22.0 * e) * cv.scale if spikes else 0.0)
        _draw_ring(line, cv, x, y, size * 2.6, line_width(cv, 0.8))
    dust = 250 + 120 * c
    flat = accent.reshape(-1)
    picks = np.unique(rng.integers(0, cv.h * cv.w, dust))
    flat[picks] = np.maximum(flat[picks], rng.random(picks.shape[0], dtype=F32) * F32(0.8))
    tone = tone + accent * F32(0.6)
    return Layers(tone=clip(tone, 0.0, 1.0), line=line, accent=accent, flow=nebula)


def _spanning_tree(pts: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """Prim's algorithm on a few dozen points: the lines of a constellation."""
    n = len(pts)
    xy = np.array(pts, dtype=np.float64)
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    best = d2[0].copy()
    parent = np.zeros(n, dtype=np.intp)
    used = np.zeros(n, dtype=bool)
    used[0] = True
    best[0] = np.inf
    edges = []
    for _ in range(n - 1):
        j = int(np.argmin(np.where(used, np.inf, best)))
        edges.append((int(parent[j]), j))
        used[j] = True
        closer = d2[j] < best
        parent[closer] = j
        best = np.minimum(best, d2[j])
    return edges


def _extra_edges(pts: Sequence[tuple[float, float]], rng: np.random.Generator, c: int) -> list[tuple[int, int]]:
    n = len(pts)
    out = []
    for _ in range(c):
        a = int(rng.integers(0, n))
        dists = [
            ((pts[a][0] - p[0]) * (pts[a][0] - p[0]) + (pts[a][1] - p[1]) * (pts[a][1] - p[1]), j)
            for j, p in enumerate(pts)
            if j != a
        ]
        dists.sort()
        out.append((a, dists[min(len(dists) - 1, 1 + int(rng.integers(0, 3)))][1]))
    return out


def _draw_segment(
    target: np.ndarray, cv: Canvas, a: tuple[float, float], b: tuple[float, float], width_px: float
) -> None:
    pad = (width_px + 2) * cv.px
    win = pixel_window(cv, min(a[0], b[0]) - pad, min(a[1], b[1]) - pad, max(a[0], b[0]) + pad, max(a[1], b[1]) + pad)
    if win is None:
        return
    ys, xs = win
    ax, ay, bx, by = a[0], a[1], b[0], b[1]
    dx, dy = bx - ax, by - ay
    inv = 1.0 / max(dx * dx + dy * dy, 1e-12)
    pu = (cv.u[xs] - F32(ax))[None, :]
    pv = (cv.v[ys] - F32(ay))[:, None]
    t = clip((pu * F32(dx) + pv * F32(dy)) * F32(inv), 0.0, 1.0)
    ex = pu - t * F32(dx)
    ey = pv - t * F32(dy)
    dist = np.sqrt(ex * ex + ey * ey) * F32(1.0 / cv.px)
    cov = clip(F32(width_px * 0.5 + 0.5) - dist, 0.0, 1.0)
    np.maximum(target[ys, xs], cov, out=target[ys, xs])


def _draw_star(target: np.ndarray, cv: Canvas, x: float, y: float, size_px: float, spike_px: float) -> None:
    reach = max(size_px * 6.0, spike_px) * cv.px
    win = pixel_window(cv, x - reach, y - reach, x + reach, y + reach)
    if win is None:
        return
    ys, xs = win
    du = (cv.u[xs] - F32(x)) * F32(1.0 / cv.px)
    dv = (cv.v[ys] - F32(y)) * F32(1.0 / cv.px)
    r2 = (du * du)[None, :] + (dv * dv)[:, None]
    s2 = F32(size_px * size_px)
    glow = s2 / (s2 + r2)
    if spike_px > 0:
        ax = np.abs(du)[None, :]
        ay = np.abs(dv)[:, None]
        along = clip(F32(1.0) - ax * F32(1.0 / spike_px), 0.0, 1.0)
        across = clip(F32(1.0) - ay * F32(1.0 / max(0.8, size_px * 0.25)), 0.0, 1.0)
        along2 = clip(F32(1.0) - ay * F32(1.0 / spike_px), 0.0, 1.0)
        across2 = clip(F32(1.0) - ax * F32(1.0 / max(0.8, size_px * 0.25)), 0.0, 1.0)
        glow = np.maximum(glow, np.maximum(along * across, along2 * across2) * F32(0.8))
    np.maximum(target[ys, xs], glow, out=target[ys, xs])


def _draw_ring(target: np.ndarray, cv: Canvas, x: float, y: float, radius_px: float, width_px: float) -> None:
    reach = (radius_px + width_px + 2) * cv.px
    win = pixel_window(cv, x - reach, y - reach, x + reach, y + reach)
    if win is None:
        return
    ys, xs = win
    du = (cv.u[xs] - F32(x)) * F32(1.0 / cv.px)
    dv = (cv.v[ys] - F32(y)) * F32(1.0 / cv.px)
    r = np.sqrt((du * du)[None, :] + (dv * dv)[:, None])
    cov = clip(F32(width_px * 0.5 + 0.5) - np.abs(r - F32(radius_px)), 0.0, 1.0) * F32(0.7)
    np.maximum(target[ys, xs], cov, out=target[ys, xs])
