"""The seal: a small emblem stamped in the bottom-right corner, its shape and colours read from 32 bits.

StyleParams.seal (8 hex digits of a guild name's hash, see personalization/context_style.py)
reads as four bytes: the first gives the emblem's sides (3..8), the second its turn, the third
its ground colour, fill, rings and centre dot, the fourth whether the polygon doubles into a star.
It is drawn after the medium and before the finish, so light, grain, vignette and contrast lie over it
as over the rest of the picture.
"""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas, line_width, pixel_window
from render.procedural.fields import F32, clip
from render.procedural.palette import Palette, blend

# Radius and margin in canvas units (the short side spans 2): a seal 15 % of the short side across.
RADIUS = 0.15
MARGIN = 0.06
# cos and sin of pi/n and of 2 pi/n for n = 3..8, written out: libm's last bit differs between machines.
_HALF_TURN = {
    3: (0.5, 0.8660254037844386),
    4: (0.7071067811865476, 0.7071067811865476),
    5: (0.8090169943749475, 0.5877852522924731),
    6: (0.8660254037844386, 0.5),
    7: (0.9009688679024191, 0.4338837391175581),
    8: (0.9238795325112867, 0.3826834323650898),
}
_FULL_TURN = {
    3: (-0.5, 0.8660254037844386),
    4: (0.0, 1.0),
    5: (0.30901699437494745, 0.9510565162951535),
    6: (0.5, 0.8660254037844386),
    7: (0.6234898018587336, 0.7818314824680298),
    8: (0.7071067811865476, 0.7071067811865476),
}


def _normals(sides: int, ax: float, ay: float) -> list[tuple[float, float]]:
    """Edge normals of a regular polygon, the first along (ax, ay), by exact repeated rotation."""
    c, s = _FULL_TURN[sides]
    normals = []
    for _ in range(sides):
        normals.append((ax, ay))
        ax, ay = ax * c - ay * s, ax * s + ay * c
    return normals


def _polygon(dx: np.ndarray, dy: np.ndarray, normals: list[tuple[float, float]], apothem: float) -> np.ndarray:
    """Signed distance-like field: < 0 inside the polygon (the largest edge distance)."""
    d = np.full(dx.shape, -1e3, dtype=F32)
    for nx, ny in normals:
        np.maximum(d, dx * F32(nx) + dy * F32(ny), out=d)
    d -= F32(apothem)
    return d


def _centre(cv: Canvas) -> tuple[float, float]:
    return cv.w * cv.px * 0.5 - RADIUS - MARGIN, cv.h * cv.px * 0.5 - RADIUS - MARGIN


def seal_window(cv: Canvas) -> tuple[slice, slice]:
    """The rows and columns the seal may touch: nothing outside them changes (before the finish)."""
    cx, cy = _centre(cv)
    window = pixel_window(cv, cx - RADIUS, cy - RADIUS, cx + RADIUS, cy + RADIUS)
    if window is None:  # pragma: no cover - the corner of a canvas is on it
        return slice(0, 0), slice(0, 0)
    return window


def stamp_seal(rgb: np.ndarray, pal: Palette, cv: Canvas, seal: int) -> np.ndarray:
    """Draw the seal's emblem onto rgb (3, h, w) in place and return it."""
    sides = 3 + ((seal >> 24) & 0xFF) % 6
    turn = ((seal >> 16) & 0xFF) / 256.0
    look = (seal >> 8) & 0xFF
    star = bool(seal & 1)
    # One of the three most vivid colours: the palest ones vanish on pale paper.
    ground = pal.vivid[(look & 7) % min(3, len(pal.vivid))]
    filled, rings, dot = bool(look & 8), (look >> 4) & 3, bool(look & 64)
    # Whichever end of the palette stands out more against the ground.
    ink = max((pal.darkest, pal.lightest), key=lambda end: abs(color.luminance(end) - color.luminance(ground)))
    cx, cy = _centre(cv)
    ys, xs = seal_window(cv)
    dx = (cv.u[xs] - F32(cx))[None, :] + np.zeros((ys.stop - ys.start, 1), dtype=F32)
    dy = (cv.v[ys] - F32(cy))[:, None] + np.zeros((1, xs.stop - xs.start), dtype=F32)
    r = np.sqrt(dx * dx + dy * dy)
    inv_px = F32(1.0 / cv.px)
    half = F32(line_width(cv, 3.0) * 0.5 + 0.5)

    def ring(radius: float, widen: float = 1.0) -> np.ndarray:
        out = F32(widen) * half - np.abs(r - F32(radius)) * inv_px
        return clip(out, 0.0, 1.0, out=out)

    disc = clip((F32(RADIUS) - r) * inv_px + F32(0.5), 0.0, 1.0)
    # t = tan of half the turn (-90..90 degrees), a rational unit vector: no libm.
    t = turn * 2.0 - 1.0
    ax, ay = (1.0 - t * t) / (1.0 + t * t), 2.0 * t / (1.0 + t * t)
    cos_half, sin_half = _HALF_TURN[sides]
    apothem = RADIUS * 0.6 * cos_half
    shape = _polygon(dx, dy, _normals(sides, ax, ay), apothem)
    if star:  # the same polygon turned by half a side: a star of 2n points
        turned = _normals(sides, ax * cos_half - ay * sin_half, ax * sin_half + ay * cos_half)
        np.minimum(shape, _polygon(dx, dy, turned, apothem), out=shape)
    if filled:
        mark = clip(F32(0.5) - shape * inv_px, 0.0, 1.0)
    else:
        mark = clip(half - np.abs(shape) * inv_px, 0.0, 1.0)
    np.maximum(mark, ring(RADIUS * 0.9), out=mark)
    if rings == 1:
        np.maximum(mark, ring(RADIUS * 0.78), out=mark)
    elif rings == 2:
        np.maximum(mark, ring(RADIUS * 0.78), out=mark)
        np.maximum(mark, ring(RADIUS * 0.70), out=mark)
    elif rings == 3:
        np.maximum(mark, ring(RADIUS * 0.76, widen=2.5), out=mark)
    if dot:
        centre = clip((F32(RADIUS * 0.18) - r) * inv_px + F32(0.5), 0.0, 1.0)
        # A dot punches through a filled shape and fills an open one.
        mark = np.abs(mark - centre) if filled else np.maximum(mark, centre)
    patch = rgb[:, ys, xs]
    patch = blend(patch, ground, disc * F32(0.94))
    patch = blend(patch, ink, mark * disc)
    rgb[:, ys, xs] = patch
    return rgb
