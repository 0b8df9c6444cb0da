"""The rings motif: overlapping discs carved with wobbling concentric rings."""

from __future__ import annotations

import math

import numpy as np

from render.procedural.canvas import Canvas, line_width, pixel_window
from render.procedural.fields import F32, clip, isolines
from render.procedural.layers import Layers
from render.procedural.noise import fbm
from render.procedural.style import Style


def draw_rings(cv: Canvas, rng: np.random.Generator, st: Style) -> Layers:
    """Overlapping discs carved with concentric rings that wobble with energy."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    amplitude = 0.004 + 0.16 * e * e + 0.04 * e
    wobble = fbm(rng, cv, 1.6 + 2.5 * e, 3)
    wobble -= F32(0.5)
    wobble *= F32(amplitude)
    cx0, cy0 = rng.random() * 1.2 - 0.6, rng.random() * 1.2 - 0.6
    d0 = np.sqrt(((u - F32(cx0)) ** 2)[None, :] + ((v - F32(cy0)) ** 2)[:, None])
    d0 += wobble
    tone = clip(F32(0.05) + d0 * F32(0.18), 0.0, 0.35)
    line = isolines(d0, cv.px, 9 + 2 * c, line_width(cv, 0.8))
    line *= F32(0.45)
    shade = np.ones((cv.h, cv.w), dtype=F32)
    accent = np.zeros((cv.h, cv.w), dtype=F32)
    n_discs = 2 + c // 3
    # x * sqrt(x) rather than x ** 1.5: libm's pow may differ in the last bit between machines.
    draws = [rng.random() for _ in range(n_discs)]
    radii = sorted((0.18 + 0.62 * x * math.sqrt(x) for x in draws), reverse=True)
    stop_choices = [0.2, 0.45, 0.7, 0.95, 0.6, 0.85, 0.33]
    for k, r in enumerate(radii):
        cx, cy = rng.random() * 1.8 - 0.9, rng.random() * 1.8 - 0.9
        if k == 0:
            cx, cy = cx * 0.4, cy * 0.4
        stop = stop_choices[(k + int(rng.integers(0, 3))) % len(stop_choices)]
        ring_width = line_width(cv, 0.7 + 1.6 * rng.random())
        sway = 1.0 + 0.15 * k
        # Work only inside the disc's box: most discs cover a fraction of the canvas.
        reach = r + amplitude * sway + 6 * cv.px
        win = pixel_window(cv, cx - reach, cy - reach, cx + reach, cy + reach)
        if win is None:
            continue
        ys, xs = win
        d = np.sqrt(((u[xs] - F32(cx)) ** 2)[None, :] + ((v[ys] - F32(cy)) ** 2)[:, None])
        d += wobble[ys, xs] * F32(sway)
        inside = clip((F32(r) - d) * F32(1.0 / cv.px) + F32(0.5), 0.0, 1.0)
        t = tone[ys, xs]
        t += (F32(stop) - t) * inside
        rings = isolines(d, cv.px, (3 + c * 0.9) / r, ring_width)
        rim = clip(F32(line_width(cv, 2.2) * 0.5 + 0.5) - np.abs(d - F32(r)) * F32(1.0 / cv.px), 0.0, 1.0)
        ln = line[ys, xs]
        ln += (rings - ln) * inside
        np.maximum(ln, rim, out=ln)
        sh = shade[ys, xs]
        sh += (F32(1.12) - d * F32(0.45 / r) - sh) * inside
        pin = 0.006 + 0.01 * r
        win = pixel_window(cv, cx - pin, cy - pin, cx + pin, cy + pin)
        if win is not None:
            py, pxs = win
            core = F32(1.0) - d[
                py.start - ys.start : py.stop - ys.start, pxs.start - xs.start : pxs.stop - xs.start
            ] * F32(1.0 / pin)
            ac = accent[py, pxs]
            np.maximum(ac, core, out=ac)
    clip(accent, 0.0, 1.0, out=accent)
    d0 *= F32(0.5)
    return Layers(tone=tone, line=line, accent=accent, shade=shade, flow=d0)
