"""Exact float32 operations on 2-D fields: clipping, easing, slopes, level lines, resampling, blur."""

from __future__ import annotations

import numpy as np

# Everything per pixel in this package uses only + - * / sqrt floor min max and
# integer indexing, which IEEE-754 defines exactly: no libm sin/exp/pow whose last
# bit differs between CPUs and numpy SIMD builds, and no reductions whose order
# depends on thread count. That is what makes pixel_sha256 reproducible.
F32 = np.float32


def clip(x: np.ndarray, lo: float, hi: float, out: np.ndarray | None = None) -> np.ndarray:
    """np.clip with float32 bounds: Python-float bounds take a slow casting path."""
    return np.clip(x, F32(lo), F32(hi), out=out)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = x - F32(e0)
    t *= F32(1.0 / (e1 - e0))
    clip(t, 0.0, 1.0, out=t)
    s = t * t
    t *= F32(-2.0)
    t += F32(3.0)
    s *= t
    return s


def wave(x: np.ndarray) -> np.ndarray:
    """Smooth periodic wave with period 1, 1 at integers and -1 at halves (a cosine stand-in)."""
    t = x - np.floor(x)
    p = np.abs(t - F32(0.5)) * F32(4.0) - F32(1.0)
    out: np.ndarray = p * (F32(1.5) - F32(0.5) * p * p)
    return out


def normalize(field: np.ndarray) -> np.ndarray:
    lo, hi = float(field.min()), float(field.max())
    out = field - F32(lo)
    out *= F32(1.0 / max(hi - lo, 1e-6))
    return out


def gradient(field: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Central differences per full-resolution pixel (spacing = full px per sample)."""
    gx = np.empty_like(field)
    gy = np.empty_like(field)
    np.subtract(field[:, 2:], field[:, :-2], out=gx[:, 1:-1])
    gx[:, 0] = gx[:, 1]
    gx[:, -1] = gx[:, -2]
    np.subtract(field[2:], field[:-2], out=gy[1:-1])
    gy[0] = gy[1]
    gy[-1] = gy[-2]
    k = F32(0.5 / spacing)
    gx *= k
    gy *= k
    return gx, gy


def magnitude(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sqrt(gx * gx + gy * gy) + F32(1e-6)
    return out


def isolines(field: np.ndarray, grad: np.ndarray | float, count: float, width_px: np.ndarray | float) -> np.ndarray:
    """Anti-aliased level lines field*count == integer, `width_px` wide wherever the slope is."""
    a = field * F32(count)
    d = np.abs(a - np.rint(a))
    d /= grad * F32(count) if isinstance(grad, np.ndarray) else F32(grad * count)
    out = (width_px * F32(0.5) + F32(0.5)) - d if isinstance(width_px, np.ndarray) else F32(width_px * 0.5 + 0.5) - d
    return clip(out, 0.0, 1.0, out=out)


def downsample(field: np.ndarray, factor: int) -> np.ndarray:
    """Block means (edge-padded to a multiple), summed in a fixed order."""
    h, w = field.shape
    hh, ww = -(-h // factor) * factor, -(-w // factor) * factor
    padded = np.pad(field, ((0, hh - h), (0, ww - w)), mode="edge") if (hh, ww) != (h, w) else field
    rows = padded[0::factor].copy()
    for k in range(1, factor):
        rows += padded[k::factor]
    out = rows[:, 0::factor].copy()
    for k in range(1, factor):
        out += rows[:, k::factor]
    out *= F32(1.0 / (factor * factor))
    return out


def _resample_axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(F32)


def upsample_to(small: np.ndarray, h: int, w: int) -> np.ndarray:
    i0, i1, tx = _resample_axis(w, small.shape[1])
    j0, j1, ty = _resample_axis(h, small.shape[0])
    return separable_lerp(small, i0, i1, tx, j0, j1, ty)


def separable_lerp(
    grid: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    tx: np.ndarray,
    j0: np.ndarray,
    j1: np.ndarray,
    ty: np.ndarray,
) -> np.ndarray:
    """Interpolate a small grid along x (cheap, grid-sized), then along y (one full-size pass)."""
    # np.take keeps results C-contiguous; fancy indexing on axis 1 does not, and
    # the full-size row gathers below then run several times slower.
    a = np.take(grid, i0, axis=1)
    rows = np.take(grid, i1, axis=1)
    rows -= a
    rows *= tx
    rows += a
    r0 = np.take(rows, j0, axis=0)
    out = np.take(rows, j1, axis=0)
    out -= r0
    out *= ty[:, None]
    out += r0
    return out


def blur(field: np.ndarray, factor: int) -> np.ndarray:
    """Wide soft blur: box-downsample, smooth with a tent, bilinear upsample."""
    h, w = field.shape
    factor = max(1, min(factor, h // 4, w // 4))
    factor = 1 << (factor * 3 // 2).bit_length() - 1  # a power of two: 1024 divides without padding
    if factor == 1:
        return field.copy()
    return upsample_to(_tent(_tent(downsample(field, factor))), h, w)


def _tent(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, mode="edge")
    y = p[1:-1, :-2] + p[1:-1, 1:-1] * F32(2.0) + p[1:-1, 2:]
    y2 = np.pad(y, ((1, 1), (0, 0)), mode="edge")
    out: np.ndarray = (y2[:-2] + y2[1:-1] * F32(2.0) + y2[2:]) * F32(1.0 / 16.0)
    return out


def hash01(x: np.ndarray, k: float) -> np.ndarray:
    y = x * F32(k)
    y -= np.floor(y)
    y *= F32(43.758)
    return y - np.floor(y)
