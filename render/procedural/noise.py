"""Seeded value noise and fractal noise over a canvas, and the other random draws motifs share."""

from __future__ import annotations

import math

import numpy as np

from render.procedural.canvas import Canvas
from render.procedural.fields import F32, separable_lerp

LATTICE = 256  # value-noise lattice period; a power of two so `& mask` wraps negatives


def smooth(t: np.ndarray) -> np.ndarray:
    out: np.ndarray = t * t * (F32(3.0) - F32(2.0) * t)
    return out


def lattice(rng: np.random.Generator) -> np.ndarray:
    return rng.random((LATTICE, LATTICE), dtype=F32)


def _axis(coord: np.ndarray, freq: float, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = coord * F32(freq) + F32(offset)
    f = np.floor(p)
    t = p - f
    i0 = f.astype(np.intp) & (LATTICE - 1)
    return i0, (i0 + 1) & (LATTICE - 1), smooth(t)


def noise_sep(lat: np.ndarray, u: np.ndarray, v: np.ndarray, freq: float, ox: float, oy: float) -> np.ndarray:
    """Value noise on the axis-aligned grid u x v: interpolate lattice columns, then rows."""
    i0, i1, tx = _axis(u, freq, ox)
    j0, j1, ty = _axis(v, freq, oy)
    return separable_lerp(lat, i0, i1, tx, j0, j1, ty)


def noise_1d(rng: np.random.Generator, x: np.ndarray, freq: float) -> np.ndarray:
    table = rng.random(LATTICE, dtype=F32)
    i0, i1, t = _axis(x, freq, rng.random() * LATTICE)
    a = table[i0]
    out: np.ndarray = a + (table[i1] - a) * t
    return out


def _fbm_sep(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, freq: float, octaves: int, gain: float = 0.5
) -> np.ndarray:
    """Fractal value noise in [0, 1] on a separable grid (full resolution, no gathers)."""
    total = np.zeros((v.shape[0], u.shape[0]), dtype=F32)
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        n = noise_sep(lattice(rng), u, v, freq * 2.0**octave, rng.random() * LATTICE, rng.random() * LATTICE)
        n *= F32(amp)
        total += n
        norm += amp
        amp *= gain
    total *= F32(1.0 / norm)
    return total


def fbm(rng: np.random.Generator, cv: Canvas, freq: float, octaves: int, gain: float = 0.5) -> np.ndarray:
    """Fractal noise over the canvas, computed at the coarsest grid its finest octave allows."""
    finest_cell_px = 1.0 / (freq * 2.0 ** (octaves - 1) * cv.px)
    factor = 4 if finest_cell_px >= 24 else 2 if finest_cell_px >= 10 else 1
    if factor == 1 or min(cv.h, cv.w) < 64:
        return _fbm_sep(rng, cv.u, cv.v, freq, octaves, gain)
    lo = cv.lo(factor)
    return cv.upsample(_fbm_sep(rng, lo.u, lo.v, freq, octaves, gain))


def noise_2d(lat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Value noise at arbitrary (warped) lattice coordinates: four gathers, so use it on small grids."""
    fx = np.floor(x)
    fy = np.floor(y)
    tx = smooth(x - fx)
    ty = smooth(y - fy)
    mask = LATTICE - 1
    ix = fx.astype(np.intp) & mask
    iy = fy.astype(np.intp) & mask
    ix1 = (ix + 1) & mask
    row0 = iy * LATTICE
    row1 = ((iy + 1) & mask) * LATTICE
    flat = lat.ravel()
    a = np.take(flat, row0 + ix)
    b = np.take(flat, row0 + ix1)
    c = np.take(flat, row1 + ix)
    d = np.take(flat, row1 + ix1)
    top = a + (b - a) * tx
    bottom = c + (d - c) * tx
    out: np.ndarray = top + (bottom - top) * ty
    return out


def fbm_2d(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, freq: float, octaves: int, gain: float = 0.5
) -> np.ndarray:
    total = np.zeros(x.shape, dtype=F32)
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        f = F32(freq * 2.0**octave)
        n = noise_2d(lattice(rng), x * f + F32(rng.random() * LATTICE), y * f + F32(rng.random() * LATTICE))
        total += n * F32(amp)
        norm += amp
        amp *= gain
    total *= F32(1.0 / norm)
    return total


def unit_vector(rng: np.random.Generator) -> tuple[float, float]:
    while True:
        x, y = rng.random() * 2.0 - 1.0, rng.random() * 2.0 - 1.0
        r2 = x * x + y * y
        if 0.01 < r2 <= 1.0:
            r = math.sqrt(r2)
            return x / r, y / r
