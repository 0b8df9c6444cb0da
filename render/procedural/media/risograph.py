"""The risograph medium: two-drum posterised halftones, slightly misregistered."""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas
from render.procedural.fields import F32, clip, smoothstep, wave
from render.procedural.layers import Layers
from render.procedural.noise import LATTICE, lattice, noise_sep
from render.procedural.palette import Palette
from render.procedural.paper import paper_texture
from render.procedural.style import Style

# Screen angles as Pythagorean unit vectors: exact rotations without libm.
_SCREENS = ((0.6, 0.8), (0.96, 0.28), (0.8, -0.6), (0.28, 0.96))


def _halftone(cv: Canvas, density: np.ndarray, angle: tuple[float, float], cell_px: float) -> np.ndarray:
    """Rotated dot screen thresholded by density, built from 1-D waves.

    cos(a + b) = cos a cos b - sin a sin b makes a rotated grid separable:
    four outer products instead of evaluating waves per pixel.
    """
    ca, sa = angle
    k = F32(1.0 / (cell_px * cv.px))
    su, sv = cv.u * k, cv.v * k
    screen = np.zeros(density.shape, dtype=F32)
    for pu, pv in ((su * F32(ca), sv * F32(sa)), (su * F32(-sa), sv * F32(ca))):
        cu, cvv = wave(pu), wave(pv)
        snu, snv = wave(pu - F32(0.25)), wave(pv - F32(0.25))
        screen += cu[None, :] * cvv[:, None]
        screen -= snu[None, :] * snv[:, None]
    screen *= F32(0.25)
    cov = density + screen
    cov -= F32(0.5)
    cov *= F32(cell_px * 0.6)
    cov += F32(0.5)
    return clip(cov, 0.0, 1.0, out=cov)


def _shift(field: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by whole pixels, repeating the edge (risograph misregistration)."""
    out = np.empty_like(field)
    h, w = field.shape
    dy, dx = max(-h + 1, min(h - 1, dy)), max(-w + 1, min(w - 1, dx))
    if dy >= 0:
        out[dy:] = field[: h - dy]
        out[:dy] = field[:1]
    else:
        out[:dy] = field[-dy:]
        out[dy:] = field[-1:]
    if dx > 0:
        out[:, dx:] = out[:, : w - dx].copy()
        out[:, :dx] = out[:, dx : dx + 1]
    elif dx < 0:
        out[:, :dx] = out[:, -dx:].copy()
        out[:, dx:] = out[:, dx - 1 : dx]
    return out


def paint_risograph(layers: Layers, pal: Palette, cv: Canvas, rng: np.random.Generator, st: Style) -> np.ndarray:
    """Two-drum riso print: posterised halftones at odd angles, slightly misregistered."""
    paper_rgb = color.mix((0.96, 0.94, 0.89), pal.lightest, 0.2)
    inks = [c for c in pal.vivid if 0.15 < color.luminance(c) < 0.9] or list(pal.vivid)
    ink_a = inks[0]
    ink_b = inks[1 % len(inks)] if len(inks) > 1 else pal.darkest
    ink_line = color.scale(pal.darkest, 0.8)
    # Each drum takes one end of the tone range, so most of the sheet is one ink
    # or bare paper, and the overprint colour appears only where they meet.
    tone = layers.tone
    post_a = smoothstep(0.32, 0.95, tone)
    post_a *= F32(3.0)
    np.rint(post_a, out=post_a)
    post_a *= F32(1.0 / 3.0)
    post_b = smoothstep(0.62, 0.05, tone)
    post_b *= F32(3.0)
    np.rint(post_b, out=post_b)
    post_b *= F32(0.85 / 3.0)
    cell = max(3.0, 9.0 * cv.scale)
    shift = max(1, round(5 * cv.scale))
    offs = [(int(rng.integers(-shift, shift + 1)), int(rng.integers(-shift, shift + 1))) for _ in range(3)]
    cov_a = _halftone(cv, _shift(post_a, *offs[0]), _SCREENS[0], cell)
    cov_b = _halftone(cv, _shift(post_b, *offs[1]), _SCREENS[1], cell)
    speckle = noise_sep(lattice(rng), cv.u, cv.v, 110.0, rng.random() * LATTICE, rng.random() * LATTICE)
    speckle -= F32(0.3)
    speckle *= F32(-(0.25 + 0.6 * st.grain))
    speckle += F32(1.0)  # now: how evenly the drum laid its ink down
    cov_a *= speckle
    cov_b *= speckle
    lines = _shift(layers.line, *offs[2])
    if layers.accent is not None:
        np.maximum(lines, _shift(layers.accent, *offs[2]), out=lines)
    lines *= speckle
    rgb = np.empty((3, cv.h, cv.w), dtype=F32)
    tooth = paper_texture(cv, rng, st.grain)
    tooth *= F32(0.6)
    tooth += F32(1.0)
    for c in range(3):
        rgb[c] = tooth * F32(paper_rgb[c])
    # Inks multiply, as translucent soy inks do on paper.
    for cov, ink in ((cov_a, ink_a), (cov_b, ink_b), (lines, ink_line)):
        clip(cov, 0.0, 1.0, out=cov)
        for c in range(3):
            rgb[c] *= F32(1.0) - cov * F32(1.0 - ink[c])
    return rgb
