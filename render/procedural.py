"""Deterministic CPU renderer: StyleParams + palette + seed -> a generative artwork."""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from personalization.style import StyleParams
from render import color
from render.color import RGB
from render.errors import InvalidRenderRequest
from render.quality import QualityThresholds, render_with_gate
from render.result import RenderResult, pixel_sha256

RENDERER = "procedural"
# Bump whenever any input can produce different pixels: tokens record it, and
# `verify` re-renders with the version that made them.
RENDERER_VERSION = "1.0.0"

MEDIA = ("ink", "watercolor", "risograph", "neon", "blueprint", "oil")
MOTIFS = ("flow", "rings", "grid", "constellation", "terrain", "shards")
MOODS = ("serene", "energetic", "mysterious", "playful", "austere", "opulent")

# zlib level 1 rather than Pillow's default 6. Film grain and paper texture make
# these frames close to incompressible: measured at 1024x1024 (benchmarks/
# render_cpu.py), level 6 takes 1.5-3x the time of level 1 and its files are no
# smaller, often larger; only a grain-free frame saves ~20 %. optimize=True (an
# extra pass searching zlib settings) is off for the same reason.
DEFAULT_PNG_COMPRESS_LEVEL = 1

# Numeric params are clamped to the span the renderer was designed for, so a
# collection with wider ranges still renders (and in bounded time).
_SPANS = {"complexity": (1, 10), "energy": (0, 100), "symmetry": (0, 100), "grain": (0, 100), "hue_shift": (-180, 180)}

# Independent random streams, so that changing how one stage draws never
# shifts another stage's numbers.
_STREAM_MOTIF, _STREAM_MEDIUM, _STREAM_FINISH = 1, 2, 3

_F32 = np.float32
_LATTICE = 256  # value-noise lattice period; a power of two so `& mask` wraps negatives


# Everything per pixel below uses only + - * / sqrt floor min max and integer
# indexing, which IEEE-754 defines exactly: no libm sin/exp/pow whose last bit
# differs between CPUs and numpy SIMD builds, and no reductions whose order
# depends on thread count. That is what makes pixel_sha256 reproducible.


def synthesize(params: StyleParams, palette: Sequence[str], seed: int, width: int, height: int) -> np.ndarray:
    """Render params into an HxWx3 uint8 array: same inputs, same bytes, in any process or IEEE-754 machine."""
    _check_request(seed, width, height)
    style = _Style.from_params(params)
    cv = _Canvas.make(height, width)
    pal = _Palette.make(palette, style)
    layers = _MOTIF_FNS[style.motif](cv, _rng(seed, _STREAM_MOTIF), style)
    layers = _fold(layers, style.symmetry)
    rgb = _MEDIUM_FNS[style.medium](layers, pal, cv, _rng(seed, _STREAM_MEDIUM), style)
    return _finish(rgb, layers, pal, cv, _rng(seed, _STREAM_FINISH), style)


def encode_png(rgb: np.ndarray, compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=compress_level, optimize=False)
    return buffer.getvalue()


def render_procedural(
    params: StyleParams,
    palette: Sequence[str],
    seed: int,
    width: int,
    height: int,
    *,
    png_compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL,
) -> RenderResult:
    """Synthesize and encode one image, timing both halves separately."""
    started = time.perf_counter()
    rgb = synthesize(params, palette, seed, width, height)
    synthesized = time.perf_counter()
    png = encode_png(rgb, png_compress_level)
    encoded = time.perf_counter()
    return RenderResult(
        png=png,
        width=width,
        height=height,
        file_sha256=hashlib.sha256(png).hexdigest(),
        pixel_sha256=pixel_sha256(rgb),
        renderer=RENDERER,
        renderer_version=RENDERER_VERSION,
        seed=seed,
        attempts=1,
        synth_seconds=synthesized - started,
        encode_seconds=encoded - synthesized,
    )


def render_procedural_gated(
    params: StyleParams,
    palette: Sequence[str],
    seed: int,
    width: int,
    height: int,
    *,
    thresholds: QualityThresholds | None = None,
    max_attempts: int = 3,
    png_compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL,
) -> RenderResult:
    """render_procedural behind the quality gate: re-seeds on a rejected frame.

    The result's seed is the one that produced the accepted pixels (what
    `verify` must replay); synth_seconds covers every attempt.
    """
    spent = 0.0

    def attempt(attempt_seed: int) -> np.ndarray:
        nonlocal spent
        started = time.perf_counter()
        rgb = synthesize(params, palette, attempt_seed, width, height)
        spent += time.perf_counter() - started
        return rgb

    gated = render_with_gate(attempt, seed, thresholds, max_attempts)
    started = time.perf_counter()
    png = encode_png(gated.value, png_compress_level)
    encode_seconds = time.perf_counter() - started
    return RenderResult(
        png=png,
        width=width,
        height=height,
        file_sha256=hashlib.sha256(png).hexdigest(),
        pixel_sha256=pixel_sha256(gated.value),
        renderer=RENDERER,
        renderer_version=RENDERER_VERSION,
        seed=gated.seed,
        attempts=gated.attempts,
        synth_seconds=spent,
        encode_seconds=encode_seconds,
    )


def resolve_choice(value: str, known: Sequence[str]) -> str:
    """A known name maps to itself; any other to a treatment picked by a stable hash."""
    if value in known:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return known[int.from_bytes(digest[:8], "big") % len(known)]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Style:
    medium: str
    motif: str
    mood: str
    complexity: int
    energy: float  # 0..1
    symmetry: float  # 0..1
    grain: float  # 0..1
    hue_shift: int

    @classmethod
    def from_params(cls, params: StyleParams) -> _Style:
        numbers: dict[str, int] = {}
        for name, (low, high) in _SPANS.items():
            value = getattr(params, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRenderRequest(f"{name} must be an integer, got {value!r}")
            numbers[name] = max(low, min(high, value))
        for name in ("palette", "medium", "motif", "mood"):
            if not isinstance(getattr(params, name), str):
                raise InvalidRenderRequest(f"{name} must be a string")
        return cls(
            medium=resolve_choice(params.medium, MEDIA),
            motif=resolve_choice(params.motif, MOTIFS),
            mood=resolve_choice(params.mood, MOODS),
            complexity=numbers["complexity"],
            energy=numbers["energy"] / 100.0,
            symmetry=numbers["symmetry"] / 100.0,
            grain=numbers["grain"] / 100.0,
            hue_shift=numbers["hue_shift"],
        )


def _check_request(seed: int, width: int, height: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidRenderRequest(f"seed must be a non-negative integer, got {seed!r}")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 16 <= value <= 8192:
            raise InvalidRenderRequest(f"{name} must be an integer in [16, 8192], got {value!r}")


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([stream, seed]))


# --------------------------------------------------------------------------- mood and palette


@dataclass(frozen=True)
class _Mood:
    saturation: float  # chroma multiplier on the palette
    light: float  # > 0 lifts towards white, < 0 sinks towards black
    contrast: float
    vignette: float
    tint: RGB
    tint_amount: float
    bloom: float  # glow around highlights
    hue_spread: float  # degrees alternate colours are pushed apart
    reduce: bool  # keep only darkest, lightest and the most vivid colour


_MOODS = {
    "serene": _Mood(0.72, 0.12, 0.8, 0.10, (0.62, 0.78, 0.86), 0.12, 0.0, 0.0, False),
    "energetic": _Mood(1.45, 0.0, 1.28, 0.0, (1.0, 0.35, 0.1), 0.04, 0.22, 0.0, False),
    "mysterious": _Mood(0.8, -0.42, 1.12, 0.75, (0.22, 0.16, 0.5), 0.2, 0.3, 0.0, False),
    "playful": _Mood(1.5, 0.1, 1.05, 0.0, (1.0, 0.55, 0.8), 0.05, 0.0, 38.0, False),
    "austere": _Mood(0.18, 0.04, 1.2, 0.08, (0.5, 0.5, 0.5), 0.0, 0.0, 0.0, True),
    "opulent": _Mood(1.2, -0.12, 1.32, 0.5, (1.0, 0.78, 0.3), 0.16, 0.45, 0.0, False),
}


@dataclass(frozen=True)
class _Palette:
    """The graded palette, darkest first, and the derived colours media draw with."""

    stops: tuple[RGB, ...]
    vivid: tuple[RGB, ...]  # most chromatic first
    lut: np.ndarray  # (3, 1024) ramp through stops
    mood: _Mood

    @classmethod
    def make(cls, colours: Sequence[str], style: _Style) -> _Palette:
        mood = _MOODS[style.mood]
        graded: list[RGB] = []
        for index, rgb in enumerate(color.parse_palette(colours)):
            rgb = color.rotate_hue(rgb, style.hue_shift + (mood.hue_spread if index % 2 else -mood.hue_spread))
            rgb = color.saturate(rgb, mood.saturation)
            if mood.light >= 0:
                rgb = color.mix(rgb, (1.0, 1.0, 1.0), mood.light)
            else:
                rgb = color.scale(rgb, 1.0 + mood.light)
            graded.append(color.clamp(color.mix(rgb, mood.tint, mood.tint_amount)))
        stops = sorted(graded, key=color.luminance)
        vivid = sorted(graded, key=_chroma, reverse=True)
        if mood.reduce and len(stops) > 3:
            stops = sorted({stops[0], stops[-1], vivid[0]}, key=color.luminance)
            vivid = sorted(stops, key=_chroma, reverse=True)
        return cls(tuple(stops), tuple(vivid), _ramp(stops), mood)

    @property
    def darkest(self) -> RGB:
        return self.stops[0]

    @property
    def lightest(self) -> RGB:
        return self.stops[-1]

    def map(self, tone: np.ndarray) -> np.ndarray:
        return _map_lut(self.lut, tone)


def _chroma(rgb: RGB) -> float:
    return max(rgb) - min(rgb)


def _ramp(stops: Sequence[RGB], size: int = 1024) -> np.ndarray:
    positions = np.linspace(0.0, 1.0, len(stops))
    at = np.linspace(0.0, 1.0, size)
    table = np.array(stops, dtype=np.float64)
    return np.stack([np.interp(at, positions, table[:, c]) for c in range(3)]).astype(_F32)


def _map_lut(lut: np.ndarray, tone: np.ndarray) -> np.ndarray:
    size = lut.shape[1]
    index = _clip(tone * _F32(size - 1) + _F32(0.5), 0.0, size - 1).astype(np.intp)
    return np.take(lut, index, axis=1)


def _col(rgb: RGB) -> np.ndarray:
    return np.array(rgb, dtype=_F32).reshape(3, 1, 1)


# --------------------------------------------------------------------------- canvas and noise


@dataclass(frozen=True)
class _Canvas:
    """Pixel grid and its coordinates: the short side spans [-1, 1]."""

    h: int
    w: int
    u: np.ndarray  # (w,) float32
    v: np.ndarray  # (h,) float32
    px: float  # coordinate units per full-resolution pixel
    step: float  # full-resolution pixels per pixel of this grid

    @classmethod
    def make(cls, h: int, w: int) -> _Canvas:
        return cls._grid(h, w, h, w)

    @classmethod
    def _grid(cls, full_h: int, full_w: int, h: int, w: int) -> _Canvas:
        short = min(full_h, full_w)
        step = full_w / w
        u = ((np.arange(w, dtype=np.float64) + 0.5) * (full_w / w) - full_w * 0.5) * (2.0 / short)
        v = ((np.arange(h, dtype=np.float64) + 0.5) * (full_h / h) - full_h * 0.5) * (2.0 / short)
        return cls(h, w, u.astype(_F32), v.astype(_F32), 2.0 / short, step)

    @property
    def scale(self) -> float:
        """Line widths are designed at 1024 px; scale them with the image."""
        return min(self.h, self.w) * self.step / 1024.0

    def lo(self, factor: int) -> _Canvas:
        h = max(4, -(-self.h // factor))
        w = max(4, -(-self.w // factor))
        return _Canvas._grid(self.h, self.w, h, w)

    def grids(self) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_to(self.u[None, :], (self.h, self.w)), np.broadcast_to(self.v[:, None], (self.h, self.w))

    def upsample(self, lo: np.ndarray) -> np.ndarray:
        """Bilinear, separable: the cheap way to bring a smooth low-res field to full size."""
        return _upsample_to(lo, self.h, self.w)


def _lw(cv: _Canvas, width_at_1024: float) -> float:
    """Line width in pixels: scaled with the image, but never thinner than a pixel."""
    return max(0.9, width_at_1024 * cv.scale)


def _resample_axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(_F32)


def _clip(x: np.ndarray, lo: float, hi: float, out: np.ndarray | None = None) -> np.ndarray:
    """np.clip with float32 bounds: Python-float bounds take a slow casting path."""
    return np.clip(x, _F32(lo), _F32(hi), out=out)


def _smooth(t: np.ndarray) -> np.ndarray:
    out: np.ndarray = t * t * (_F32(3.0) - _F32(2.0) * t)
    return out


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = x - _F32(e0)
    t *= _F32(1.0 / (e1 - e0))
    _clip(t, 0.0, 1.0, out=t)
    s = t * t
    t *= _F32(-2.0)
    t += _F32(3.0)
    s *= t
    return s


def _wave(x: np.ndarray) -> np.ndarray:
    """Smooth periodic wave with period 1, 1 at integers and -1 at halves (a cosine stand-in)."""
    t = x - np.floor(x)
    p = np.abs(t - _F32(0.5)) * _F32(4.0) - _F32(1.0)
    out: np.ndarray = p * (_F32(1.5) - _F32(0.5) * p * p)
    return out


def _lattice(rng: np.random.Generator) -> np.ndarray:
    return rng.random((_LATTICE, _LATTICE), dtype=_F32)


def _axis(coord: np.ndarray, freq: float, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = coord * _F32(freq) + _F32(offset)
    f = np.floor(p)
    t = p - f
    i0 = f.astype(np.intp) & (_LATTICE - 1)
    return i0, (i0 + 1) & (_LATTICE - 1), _smooth(t)


def _noise_sep(lat: np.ndarray, u: np.ndarray, v: np.ndarray, freq: float, ox: float, oy: float) -> np.ndarray:
    """Value noise on the axis-aligned grid u x v: interpolate lattice columns, then rows."""
    i0, i1, tx = _axis(u, freq, ox)
    j0, j1, ty = _axis(v, freq, oy)
    return _separable_lerp(lat, i0, i1, tx, j0, j1, ty)


def _noise_1d(rng: np.random.Generator, x: np.ndarray, freq: float) -> np.ndarray:
    table = rng.random(_LATTICE, dtype=_F32)
    i0, i1, t = _axis(x, freq, rng.random() * _LATTICE)
    a = table[i0]
    out: np.ndarray = a + (table[i1] - a) * t
    return out


def _fbm_sep(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, freq: float, octaves: int, gain: float = 0.5
) -> np.ndarray:
    """Fractal value noise in [0, 1] on a separable grid (full resolution, no gathers)."""
    total = np.zeros((v.shape[0], u.shape[0]), dtype=_F32)
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        n = _noise_sep(_lattice(rng), u, v, freq * 2.0**octave, rng.random() * _LATTICE, rng.random() * _LATTICE)
        n *= _F32(amp)
        total += n
        norm += amp
        amp *= gain
    total *= _F32(1.0 / norm)
    return total


def _fbm(rng: np.random.Generator, cv: _Canvas, freq: float, octaves: int, gain: float = 0.5) -> np.ndarray:
    """Fractal noise over the canvas, computed at the coarsest grid its finest octave allows."""
    finest_cell_px = 1.0 / (freq * 2.0 ** (octaves - 1) * cv.px)
    factor = 4 if finest_cell_px >= 24 else 2 if finest_cell_px >= 10 else 1
    if factor == 1 or min(cv.h, cv.w) < 64:
        return _fbm_sep(rng, cv.u, cv.v, freq, octaves, gain)
    lo = cv.lo(factor)
    return cv.upsample(_fbm_sep(rng, lo.u, lo.v, freq, octaves, gain))


def _noise_2d(lat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Value noise at arbitrary (warped) lattice coordinates: four gathers, so use it on small grids."""
    fx = np.floor(x)
    fy = np.floor(y)
    tx = _smooth(x - fx)
    ty = _smooth(y - fy)
    mask = _LATTICE - 1
    ix = fx.astype(np.intp) & mask
    iy = fy.astype(np.intp) & mask
    ix1 = (ix + 1) & mask
    row0 = iy * _LATTICE
    row1 = ((iy + 1) & mask) * _LATTICE
    flat = lat.ravel()
    a = np.take(flat, row0 + ix)
    b = np.take(flat, row0 + ix1)
    c = np.take(flat, row1 + ix)
    d = np.take(flat, row1 + ix1)
    top = a + (b - a) * tx
    bottom = c + (d - c) * tx
    out: np.ndarray = top + (bottom - top) * ty
    return out


def _fbm_2d(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, freq: float, octaves: int, gain: float = 0.5
) -> np.ndarray:
    total = np.zeros(x.shape, dtype=_F32)
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        f = _F32(freq * 2.0**octave)
        n = _noise_2d(_lattice(rng), x * f + _F32(rng.random() * _LATTICE), y * f + _F32(rng.random() * _LATTICE))
        total += n * _F32(amp)
        norm += amp
        amp *= gain
    total *= _F32(1.0 / norm)
    return total


def _normalize(field: np.ndarray) -> np.ndarray:
    lo, hi = float(field.min()), float(field.max())
    out = field - _F32(lo)
    out *= _F32(1.0 / max(hi - lo, 1e-6))
    return out


def _gradient(field: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Central differences per full-resolution pixel (spacing = full px per sample)."""
    gx = np.empty_like(field)
    gy = np.empty_like(field)
    np.subtract(field[:, 2:], field[:, :-2], out=gx[:, 1:-1])
    gx[:, 0] = gx[:, 1]
    gx[:, -1] = gx[:, -2]
    np.subtract(field[2:], field[:-2], out=gy[1:-1])
    gy[0] = gy[1]
    gy[-1] = gy[-2]
    k = _F32(0.5 / spacing)
    gx *= k
    gy *= k
    return gx, gy


def _magnitude(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sqrt(gx * gx + gy * gy) + _F32(1e-6)
    return out


def _isolines(field: np.ndarray, grad: np.ndarray | float, count: float, width_px: np.ndarray | float) -> np.ndarray:
    """Anti-aliased level lines field*count == integer, `width_px` wide wherever the slope is."""
    a = field * _F32(count)
    d = np.abs(a - np.rint(a))
    d /= grad * _F32(count) if isinstance(grad, np.ndarray) else _F32(grad * count)
    out = (width_px * _F32(0.5) + _F32(0.5)) - d if isinstance(width_px, np.ndarray) else _F32(width_px * 0.5 + 0.5) - d
    return _clip(out, 0.0, 1.0, out=out)


def _downsample(field: np.ndarray, factor: int) -> np.ndarray:
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
    out *= _F32(1.0 / (factor * factor))
    return out


def _upsample_to(small: np.ndarray, h: int, w: int) -> np.ndarray:
    i0, i1, tx = _resample_axis(w, small.shape[1])
    j0, j1, ty = _resample_axis(h, small.shape[0])
    return _separable_lerp(small, i0, i1, tx, j0, j1, ty)


def _separable_lerp(
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


def _blur(field: np.ndarray, factor: int) -> np.ndarray:
    """Wide soft blur: box-downsample, smooth with a tent, bilinear upsample."""
    h, w = field.shape
    factor = max(1, min(factor, h // 4, w // 4))
    factor = 1 << (factor * 3 // 2).bit_length() - 1  # a power of two: 1024 divides without padding
    if factor == 1:
        return field.copy()
    return _upsample_to(_tent(_tent(_downsample(field, factor))), h, w)


def _tent(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, mode="edge")
    y = p[1:-1, :-2] + p[1:-1, 1:-1] * _F32(2.0) + p[1:-1, 2:]
    y2 = np.pad(y, ((1, 1), (0, 0)), mode="edge")
    out: np.ndarray = (y2[:-2] + y2[1:-1] * _F32(2.0) + y2[2:]) * _F32(1.0 / 16.0)
    return out


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


# --------------------------------------------------------------------------- motifs


@dataclass(frozen=True)
class _Layers:
    """What a motif hands a medium: all (h, w) float32."""

    tone: np.ndarray  # colour position along the palette, 0..1
    line: np.ndarray  # line-work coverage, 0..1
    accent: np.ndarray | None = None  # point lights: stars, nodes, glints
    shade: np.ndarray | None = None  # multiplicative light, ~1
    flow: np.ndarray | None = None  # smooth field whose level lines follow the composition


def _unit_vector(rng: np.random.Generator) -> tuple[float, float]:
    while True:
        x, y = rng.random() * 2.0 - 1.0, rng.random() * 2.0 - 1.0
        r2 = x * x + y * y
        if 0.01 < r2 <= 1.0:
            r = math.sqrt(r2)
            return x / r, y / r


def _motif_flow(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """Streamlines of a domain-warped stream function: marbled, calligraphic currents."""
    lo = cv.lo(4)
    x, y = lo.grids()
    e, c = st.energy, st.complexity
    freq = 0.7 + 1.5 * e
    warp = 0.15 + 1.5 * e
    qx = _fbm_2d(rng, x, y, freq, 3) - _F32(0.5)
    qy = _fbm_2d(rng, x, y, freq, 3) - _F32(0.5)
    wx = x + qx * _F32(warp)
    wy = y + qy * _F32(warp)
    if e > 0.45:
        rx = _fbm_2d(rng, wx, wy, freq * 1.7, 2) - _F32(0.5)
        ry = _fbm_2d(rng, wx, wy, freq * 1.7, 2) - _F32(0.5)
        wx += rx * _F32(warp * 0.6)
        wy += ry * _F32(warp * 0.6)
    dx, dy = _unit_vector(rng)
    # A dominant drift keeps streamlines long instead of closing into blobs;
    # energy hands more of the field to turbulence.
    drift = x * _F32(dx) + y * _F32(dy)
    psi = _fbm_2d(rng, wx, wy, 0.8 + 0.4 * e, 2 + c // 3, 0.45 + 0.1 * e)
    psi = psi * _F32(0.6 + 1.4 * e) + drift * _F32(0.45)
    psi = _normalize(psi)
    gx, gy = _gradient(psi, lo.step)
    grad = cv.upsample(_magnitude(gx, gy))
    tone = cv.upsample(psi)
    pen = _fbm(rng, cv, 2.5, 2)
    width = np.maximum((pen * _F32(2.2) + _F32(0.25)) * _F32(1.7 * cv.scale), _F32(0.9))
    line = _isolines(tone, grad, 7 + 3.2 * c, width)
    return _Layers(tone=tone, line=line, flow=tone)


def _motif_rings(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """Overlapping discs carved with concentric rings that wobble with energy."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    amplitude = 0.004 + 0.16 * e * e + 0.04 * e
    wobble = _fbm(rng, cv, 1.6 + 2.5 * e, 3)
    wobble -= _F32(0.5)
    wobble *= _F32(amplitude)
    cx0, cy0 = rng.random() * 1.2 - 0.6, rng.random() * 1.2 - 0.6
    d0 = np.sqrt(((u - _F32(cx0)) ** 2)[None, :] + ((v - _F32(cy0)) ** 2)[:, None])
    d0 += wobble
    tone = _clip(_F32(0.05) + d0 * _F32(0.18), 0.0, 0.35)
    line = _isolines(d0, cv.px, 9 + 2 * c, _lw(cv, 0.8))
    line *= _F32(0.45)
    shade = np.ones((cv.h, cv.w), dtype=_F32)
    accent = np.zeros((cv.h, cv.w), dtype=_F32)
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
        ring_width = _lw(cv, 0.7 + 1.6 * rng.random())
        sway = 1.0 + 0.15 * k
        # Work only inside the disc's box: most discs cover a fraction of the canvas.
        reach = r + amplitude * sway + 6 * cv.px
        win = _patch(cv, cx - reach, cy - reach, cx + reach, cy + reach)
        if win is None:
            continue
        ys, xs = win
        d = np.sqrt(((u[xs] - _F32(cx)) ** 2)[None, :] + ((v[ys] - _F32(cy)) ** 2)[:, None])
        d += wobble[ys, xs] * _F32(sway)
        inside = _clip((_F32(r) - d) * _F32(1.0 / cv.px) + _F32(0.5), 0.0, 1.0)
        t = tone[ys, xs]
        t += (_F32(stop) - t) * inside
        rings = _isolines(d, cv.px, (3 + c * 0.9) / r, ring_width)
        rim = _clip(_F32(_lw(cv, 2.2) * 0.5 + 0.5) - np.abs(d - _F32(r)) * _F32(1.0 / cv.px), 0.0, 1.0)
        ln = line[ys, xs]
        ln += (rings - ln) * inside
        np.maximum(ln, rim, out=ln)
        sh = shade[ys, xs]
        sh += (_F32(1.12) - d * _F32(0.45 / r) - sh) * inside
        pin = 0.006 + 0.01 * r
        win = _patch(cv, cx - pin, cy - pin, cx + pin, cy + pin)
        if win is not None:
            py, pxs = win
            core = _F32(1.0) - d[
                py.start - ys.start : py.stop - ys.start, pxs.start - xs.start : pxs.stop - xs.start
            ] * _F32(1.0 / pin)
            ac = accent[py, pxs]
            np.maximum(ac, core, out=ac)
    _clip(accent, 0.0, 1.0, out=accent)
    d0 *= _F32(0.5)
    return _Layers(tone=tone, line=line, accent=accent, shade=shade, flow=d0)


def _motif_grid(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """Truchet tiles: quarter-arc ribbons weaving across a coloured grid, bent by energy."""
    e, c = st.energy, st.complexity
    n = 2 + c
    cell = 2.0 / n
    amp = cell * (0.05 + 0.9 * e)
    bend_u = (_noise_1d(rng, cv.v, 0.8 + 1.2 * e) - _F32(0.5)) * _F32(amp)
    bend_v = (_noise_1d(rng, cv.u, 0.8 + 1.2 * e) - _F32(0.5)) * _F32(amp)
    gx = (cv.u[None, :] + bend_u[:, None] + _F32(8.0)) * _F32(1.0 / cell)
    gy = (cv.v[:, None] + bend_v[None, :] + _F32(8.0)) * _F32(1.0 / cell)
    fx0 = np.floor(gx)
    fy0 = np.floor(gy)
    fx = gx - fx0
    fy = gy - fy0
    table = 64
    idx = (fy0.astype(np.intp) & (table - 1)) * table + (fx0.astype(np.intp) & (table - 1))
    flips = (rng.random(table * table) < 0.5).astype(_F32)
    tone_a = rng.integers(0, 5, table * table).astype(_F32) * _F32(0.25)
    tone_b = rng.integers(0, 5, table * table).astype(_F32) * _F32(0.25)
    flip = np.take(flips, idx)
    fx += flip * (_F32(1.0) - _F32(2.0) * fx)
    r1 = np.sqrt(fx * fx + fy * fy)
    ox = _F32(1.0) - fx
    oy = _F32(1.0) - fy
    r2 = np.sqrt(ox * ox + oy * oy)
    ra = np.minimum(r1, r2)
    cell_px = cell / cv.px
    inside = _clip((_F32(0.5) - ra) * _F32(cell_px) + _F32(0.5), 0.0, 1.0)
    ta = np.take(tone_a, idx)
    tb = np.take(tone_b, idx)
    tone = tb + (ta - tb) * inside
    strands = 2 + c // 3
    band = np.abs(ra - _F32(0.5))
    line = _isolines(ra - _F32(0.5), 1.0 / cell_px, strands / 0.5, _lw(cv, 1.2) + cell_px * 0.01)
    line *= _clip((_F32(0.27) - band) * _F32(cell_px), 0.0, 1.0)
    shade = _F32(1.06) - band * _F32(0.5)
    flow = (gx + gy) * _F32(0.05)
    return _Layers(tone=tone, line=line, shade=shade, flow=flow)


def _motif_constellation(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """A star chart: nebula clouds, clustered stars and the lines that join them."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    nebula = _fbm(rng, cv, 1.3 + 1.5 * e, 5, 0.55)
    bx, by = _unit_vector(rng)
    band = np.abs((u * _F32(bx))[None, :] + (v * _F32(by))[:, None] + (nebula - _F32(0.5)) * _F32(0.6))
    milky = _F32(1.0) / (_F32(1.0) + band * band * _F32(9.0))
    # Mid-range tone: paper media show a pale sky, light media a faint nebula.
    clouds = _smoothstep(0.42, 0.72, nebula)
    tone = clouds * (milky * _F32(0.3) + _F32(0.22))
    tone += milky * _F32(0.18)
    tone += _F32(0.3)
    line = np.zeros((cv.h, cv.w), dtype=_F32)
    accent = np.zeros((cv.h, cv.w), dtype=_F32)
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
        _draw_segment(line, cv, pts[a], pts[b], _lw(cv, 1.2 + 1.0 * e))
    for i, (x, y) in enumerate(pts):
        brightness = rng.random()
        size = max(0.8, (1.5 + 4.0 * brightness * brightness) * cv.scale)
        spikes = i % 3 == 0 and e > 0.2
        _draw_star(accent, cv, x, y, size, (6.0 + 22.0 * e) * cv.scale if spikes else 0.0)
        _draw_ring(line, cv, x, y, size * 2.6, _lw(cv, 0.8))
    dust = 250 + 120 * c
    flat = accent.reshape(-1)
    picks = np.unique(rng.integers(0, cv.h * cv.w, dust))
    flat[picks] = np.maximum(flat[picks], rng.random(picks.shape[0], dtype=_F32) * _F32(0.8))
    tone = tone + accent * _F32(0.6)
    return _Layers(tone=_clip(tone, 0.0, 1.0), line=line, accent=accent, flow=nebula)


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


def _patch(cv: _Canvas, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice] | None:
    """Pixel window covering a coordinate box, or None when off canvas."""
    cx0 = max(0, int((min(x0, x1) / cv.px) + cv.w * 0.5) - 1)
    cx1 = min(cv.w, int((max(x0, x1) / cv.px) + cv.w * 0.5) + 2)
    cy0 = max(0, int((min(y0, y1) / cv.px) + cv.h * 0.5) - 1)
    cy1 = min(cv.h, int((max(y0, y1) / cv.px) + cv.h * 0.5) + 2)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    return slice(cy0, cy1), slice(cx0, cx1)


def _draw_segment(
    target: np.ndarray, cv: _Canvas, a: tuple[float, float], b: tuple[float, float], width_px: float
) -> None:
    pad = (width_px + 2) * cv.px
    win = _patch(cv, min(a[0], b[0]) - pad, min(a[1], b[1]) - pad, max(a[0], b[0]) + pad, max(a[1], b[1]) + pad)
    if win is None:
        return
    ys, xs = win
    ax, ay, bx, by = a[0], a[1], b[0], b[1]
    dx, dy = bx - ax, by - ay
    inv = 1.0 / max(dx * dx + dy * dy, 1e-12)
    pu = (cv.u[xs] - _F32(ax))[None, :]
    pv = (cv.v[ys] - _F32(ay))[:, None]
    t = _clip((pu * _F32(dx) + pv * _F32(dy)) * _F32(inv), 0.0, 1.0)
    ex = pu - t * _F32(dx)
    ey = pv - t * _F32(dy)
    dist = np.sqrt(ex * ex + ey * ey) * _F32(1.0 / cv.px)
    cov = _clip(_F32(width_px * 0.5 + 0.5) - dist, 0.0, 1.0)
    np.maximum(target[ys, xs], cov, out=target[ys, xs])


def _draw_star(target: np.ndarray, cv: _Canvas, x: float, y: float, size_px: float, spike_px: float) -> None:
    reach = max(size_px * 6.0, spike_px) * cv.px
    win = _patch(cv, x - reach, y - reach, x + reach, y + reach)
    if win is None:
        return
    ys, xs = win
    du = (cv.u[xs] - _F32(x)) * _F32(1.0 / cv.px)
    dv = (cv.v[ys] - _F32(y)) * _F32(1.0 / cv.px)
    r2 = (du * du)[None, :] + (dv * dv)[:, None]
    s2 = _F32(size_px * size_px)
    glow = s2 / (s2 + r2)
    if spike_px > 0:
        ax = np.abs(du)[None, :]
        ay = np.abs(dv)[:, None]
        along = _clip(_F32(1.0) - ax * _F32(1.0 / spike_px), 0.0, 1.0)
        across = _clip(_F32(1.0) - ay * _F32(1.0 / max(0.8, size_px * 0.25)), 0.0, 1.0)
        along2 = _clip(_F32(1.0) - ay * _F32(1.0 / spike_px), 0.0, 1.0)
        across2 = _clip(_F32(1.0) - ax * _F32(1.0 / max(0.8, size_px * 0.25)), 0.0, 1.0)
        glow = np.maximum(glow, np.maximum(along * across, along2 * across2) * _F32(0.8))
    np.maximum(target[ys, xs], glow, out=target[ys, xs])


def _draw_ring(target: np.ndarray, cv: _Canvas, x: float, y: float, radius_px: float, width_px: float) -> None:
    reach = (radius_px + width_px + 2) * cv.px
    win = _patch(cv, x - reach, y - reach, x + reach, y + reach)
    if win is None:
        return
    ys, xs = win
    du = (cv.u[xs] - _F32(x)) * _F32(1.0 / cv.px)
    dv = (cv.v[ys] - _F32(y)) * _F32(1.0 / cv.px)
    r = np.sqrt((du * du)[None, :] + (dv * dv)[:, None])
    cov = _clip(_F32(width_px * 0.5 + 0.5) - np.abs(r - _F32(radius_px)), 0.0, 1.0) * _F32(0.7)
    np.maximum(target[ys, xs], cov, out=target[ys, xs])


def _motif_terrain(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """A topographic survey: ridged relief, hillshade, contour lines and a still sea."""
    e, c = st.energy, st.complexity
    lo = cv.lo(4)
    x, y = lo.grids()
    qx = _fbm_2d(rng, x, y, 0.9, 2) - _F32(0.5)
    qy = _fbm_2d(rng, x, y, 0.9, 2) - _F32(0.5)
    wx = x + qx * _F32(0.35 + 0.5 * e)
    wy = y + qy * _F32(0.35 + 0.5 * e)
    relief = np.zeros(x.shape, dtype=_F32)
    amp, freq = 1.0, 0.9 + 0.9 * e
    for _ in range(3 + c // 3):
        n = _noise_2d(
            _lattice(rng), wx * _F32(freq) + _F32(rng.random() * 99), wy * _F32(freq) + _F32(rng.random() * 99)
        )
        ridge = _F32(1.0) - np.abs(n * _F32(2.0) - _F32(1.0))
        relief += ridge * ridge * _F32(amp)
        amp *= 0.42 + 0.2 * e
        freq *= 2.05
    cx, cy = rng.random() - 0.5, rng.random() - 0.5
    dome = ((lo.u - _F32(cx)) ** 2)[None, :] + ((lo.v - _F32(cy)) ** 2)[:, None]
    relief -= dome * _F32(0.6)
    relief = _normalize(relief)
    relief = relief * relief * (_F32(3.0) - _F32(2.0) * relief) * _F32(0.5) + relief * _F32(0.5)
    gx, gy = _gradient(relief, lo.step)
    height = cv.upsample(relief)
    height += (_fbm(rng, cv, 24.0, 2) - _F32(0.5)) * _F32(0.012 + 0.03 * e)
    sgx = cv.upsample(gx)
    sgy = cv.upsample(gy)
    grad = _magnitude(sgx, sgy)
    sea = 0.2 + 0.12 * rng.random()
    land = _smoothstep(sea - 0.004, sea + 0.004, height)
    count = 10 + 3.5 * c
    contour = _isolines(height, grad, count, _lw(cv, 0.9))
    index = _isolines(height, grad, count / 5.0, _lw(cv, 2.2))
    line = np.maximum(contour * _F32(0.6), index) * land
    coast = _isolines(height - _F32(sea), grad, 1.0, _lw(cv, 2.6))
    coast *= (np.abs(height - _F32(sea)) < _F32(0.1)).astype(_F32)
    np.maximum(line, coast, out=line)
    k = _F32(0.5 * 1024 / (1 + 3 * e) * cv.scale)
    shade = _F32(1.0) + (sgx + sgy) * k * _F32(-0.7)
    shade = _clip(shade, 0.45, 1.5) * land + (_F32(1.0) - land)
    tone = height * land + (_F32(0.12) + height * _F32(0.3)) * (_F32(1.0) - land)
    return _Layers(tone=tone, line=line, shade=shade, flow=height)


def _motif_shards(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """Shattered glass: radial and concentric cracks from an impact, faceted cells."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    fx, fy = rng.random() * 1.0 - 0.5, rng.random() * 1.0 - 0.5
    jag = _fbm(rng, cv, 3.0 + 6.0 * e, 3)
    jag -= _F32(0.5)
    jag *= _F32(0.004 + 0.16 * e)
    # Each crack adds its own random weight to the cells on its positive side,
    # so the sum identifies a cell; the nearest crack gives the line work.
    cell_id = np.zeros((cv.h, cv.w), dtype=_F32)
    crack = np.full((cv.h, cv.w), 1e3, dtype=_F32)
    d = np.empty((cv.h, cv.w), dtype=_F32)
    side = np.empty((cv.h, cv.w), dtype=bool)

    def cut(weight: float) -> None:
        np.greater(d, _F32(0.0), out=side)
        np.add(cell_id, _F32(weight), out=cell_id, where=side)
        np.abs(d, out=d)
        np.minimum(crack, d, out=crack)

    n_radial = 3 + (c * 7) // 10
    for k in range(n_radial):
        ax, ay = _direction((k + 0.3 + 0.4 * rng.random()) / n_radial * 0.5)
        ox = fx + (rng.random() - 0.5) * 0.08
        oy = fy + (rng.random() - 0.5) * 0.08
        np.add(((u - _F32(ox)) * _F32(-ay))[None, :], ((v - _F32(oy)) * _F32(ax))[:, None], out=d)
        d += jag
        cut(rng.random())
    dist = np.sqrt(((u - _F32(fx)) ** 2)[None, :] + ((v - _F32(fy)) ** 2)[:, None])
    dist += jag * _F32(1.5)
    n_rings = 1 + c // 3
    for k in range(n_rings):
        r = 0.12 + (k + rng.random() * 0.6) * (1.5 / n_rings)
        np.subtract(dist, _F32(r), out=d)
        cut(rng.random())
    for _ in range(c // 3):
        ax, ay = _unit_vector(rng)
        ox, oy = rng.random() * 1.8 - 0.9, rng.random() * 1.8 - 0.9
        np.add(((u - _F32(ox)) * _F32(-ay))[None, :], ((v - _F32(oy)) * _F32(ax))[:, None], out=d)
        d += jag
        cut(rng.random())
    tone = _hash01(cell_id, 12.9898)
    tone *= _F32(4.999)
    np.floor(tone, out=tone)
    tone *= _F32(0.25)
    # Facets: each cell tilts its own way, a linear gradient in a random direction.
    shade = _hash01(cell_id, 78.233)
    shade -= _F32(0.5)
    shade *= u[None, :]
    tilt = _hash01(cell_id, 39.346)
    tilt -= _F32(0.5)
    tilt *= v[:, None]
    shade += tilt
    shade *= _F32(0.9)
    shade += _F32(1.0)
    width = _lw(cv, 1.0 + 1.5 * e)
    crack *= _F32(-1.0 / cv.px)
    crack += _F32(width * 0.5 + 0.5)
    line = _clip(crack, 0.0, 1.0, out=crack)
    glint = dist * dist
    glint *= _F32(400.0)
    glint += _F32(1.0)
    np.reciprocal(glint, out=glint)
    return _Layers(tone=tone, line=line, accent=glint, shade=shade, flow=dist)


def _direction(turns: float) -> tuple[float, float]:
    """Unit vector at `turns` of a half circle, without libm (a rational parametrisation)."""
    t = (turns % 1.0) * 2.0 - 1.0  # tan of half the angle, in [-1, 1): angles -90..90 degrees
    return (1.0 - t * t) / (1.0 + t * t), 2.0 * t / (1.0 + t * t)


def _hash01(x: np.ndarray, k: float) -> np.ndarray:
    y = x * _F32(k)
    y -= np.floor(y)
    y *= _F32(43.758)
    return y - np.floor(y)


_MOTIF_FNS: dict[str, Callable[[_Canvas, np.random.Generator, _Style], _Layers]] = {
    "flow": _motif_flow,
    "rings": _motif_rings,
    "grid": _motif_grid,
    "constellation": _motif_constellation,
    "terrain": _motif_terrain,
    "shards": _motif_shards,
}


# --------------------------------------------------------------------------- symmetry


def _fold(layers: _Layers, symmetry: float) -> _Layers:
    """Mirror-fold every layer in place: the fold line walks in from the edge as symmetry grows.

    0..0.5 moves a vertical mirror from the left edge to the centre, 0.5..0.85
    brings in a horizontal one, and >= 0.9 adds the diagonal (square canvases)
    for an eightfold kaleidoscope. Folding pixels rather than coordinates keeps
    it exact, motif-agnostic, and a handful of slice copies.
    """
    h, w = layers.tone.shape
    xc = min(round(min(symmetry, 0.5) * w), w // 2)
    yc = min(round(min(max(symmetry - 0.5, 0.0) / 0.35, 1.0) * 0.5 * h), h // 2)
    diagonal = symmetry >= 0.9 and h == w and xc == w // 2 and yc == h // 2
    if xc == 0 and yc == 0:
        return layers
    upper = ~np.tri(h - yc, w - xc, dtype=bool) if diagonal else None
    seen: set[int] = set()
    for field in (layers.tone, layers.line, layers.accent, layers.shade, layers.flow):
        if field is None or id(field) in seen:
            continue
        seen.add(id(field))
        if upper is not None:
            quadrant = field[yc:, xc:]
            np.copyto(quadrant, quadrant.T.copy(), where=upper)
        if yc:
            field[:yc] = field[2 * yc - 1 : yc - 1 : -1]
        if xc:
            field[:, :xc] = field[:, 2 * xc - 1 : xc - 1 : -1]
    return layers


# --------------------------------------------------------------------------- media


def _paper(cv: _Canvas, rng: np.random.Generator, grain: float) -> np.ndarray:
    """Paper tooth and mottling, ~0 mean; grain sets how much shows."""
    tooth = _noise_sep(_lattice(rng), cv.u, cv.v, 90.0, rng.random() * _LATTICE, rng.random() * _LATTICE)
    tooth -= _F32(0.5)
    tooth *= _F32(0.05 + 0.35 * grain)
    mottle = _fbm(rng, cv, 5.0, 3)
    mottle -= _F32(0.5)
    mottle *= _F32(0.03 + 0.22 * grain)
    tooth += mottle
    return tooth


def _mix(base: np.ndarray, rgb: RGB | np.ndarray, amount: np.ndarray) -> np.ndarray:
    top = _col(rgb) if isinstance(rgb, tuple) else rgb
    out: np.ndarray = base + (top - base) * amount
    return out


def _medium_ink(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Pen and brush on paper: solid blacks, engraved hatching, open paper, one spot colour."""
    paper_rgb = color.mix(pal.lightest, (0.97, 0.95, 0.9), 0.65)
    ink_rgb = color.scale(pal.darkest, 0.35)
    spots = [c for c in pal.vivid if color.luminance(c) < 0.8] or list(pal.vivid)
    tooth = _paper(cv, rng, st.grain)
    tone = layers.tone + tooth * _F32(0.25)
    rgb = np.empty((3, cv.h, cv.w), dtype=_F32)
    rgb[:] = _col(paper_rgb)
    rgb *= _F32(1.0) + tooth * _F32(0.5)
    # The top of the tone range prints as a flat second plate, like a spot-colour comic.
    rgb = _mix(rgb, spots[0], _smoothstep(0.66, 0.69, tone) * _F32(0.92))
    period = max(3.0, 6.0 * cv.scale)
    dark = _clip((_F32(0.4) - tone) * _F32(1.0 / 0.25), 0.0, 1.0)
    diag = (cv.u[None, :] + cv.v[:, None]) * _F32(1.0 / (period * cv.px * 1.4142))
    hatch = _clip(dark * _F32(period * 0.45) + _F32(0.5) - np.abs(diag - np.rint(diag)) * _F32(period), 0.0, 1.0)
    anti = (cv.u[None, :] - cv.v[:, None]) * _F32(1.0 / (period * cv.px * 1.4142))
    dark2 = _clip(dark * _F32(2.0) - _F32(1.0), 0.0, 1.0)
    cross = _clip(dark2 * _F32(period * 0.45) + _F32(0.5) - np.abs(anti - np.rint(anti)) * _F32(period), 0.0, 1.0)
    # Dry brush: the loaded brush skips over the paper's tooth at the edges of a stroke.
    dry = _fbm(rng, cv, 45.0, 2)
    solid = _smoothstep(0.0, 0.05, _F32(0.13) - tone + (dry - _F32(0.5)) * _F32(0.08))
    strokes = np.maximum(np.maximum(hatch, cross) * _F32(0.85), solid)
    np.maximum(strokes, layers.line * (_F32(0.6) + _smoothstep(0.3, 0.5, dry) * _F32(0.4)), out=strokes)
    if layers.accent is not None:
        np.maximum(strokes, _clip(layers.accent * _F32(1.6) - _F32(0.3), 0.0, 1.0), out=strokes)
    return _mix(rgb, ink_rgb, strokes)


def _medium_watercolor(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Transparent washes on cold-press paper: blooms, pooled dark edges, reserved whites."""
    # Washes are soft by nature, so their shapes are worked out at half size.
    factor = 2 if min(cv.h, cv.w) >= 128 else 1
    half = cv.lo(factor) if factor > 1 else cv
    tone = _downsample(layers.tone, factor) if factor > 1 else layers.tone
    soft = _blur(tone, max(2, round(5 * half.scale)))
    bleed = _fbm(rng, half, 2.6, 4)
    bleed -= _F32(0.5)
    t = soft + bleed * _F32(0.14)
    _clip(t, 0.0, 1.0, out=t)
    clear = np.ones(t.shape, dtype=_F32)
    pooled = np.zeros(t.shape, dtype=_F32)
    gx, gy = _gradient(t, half.step)
    grad = _magnitude(gx, gy)
    np.maximum(grad, _F32(1e-4), out=grad)
    rim_px = max(2.0, 7.0 * cv.scale)
    for level in (0.16, 0.38, 0.6, 0.8):
        # Distance inside the wash edge in full-resolution pixels: a crisp
        # edge, and a rim of pooled pigment that fades a few pixels inwards.
        inside = t - _F32(level)
        inside /= grad
        mask = _clip(inside + _F32(0.5), 0.0, 1.0)
        inside *= _F32(-1.0 / rim_px)
        inside += _F32(1.0)
        _clip(inside, 0.0, 1.0, out=inside)
        inside *= mask
        np.maximum(pooled, inside, out=pooled)
        mask *= _F32(-0.42)
        mask += _F32(1.0)
        clear *= mask
    # Reserved whites: the painter leaves paper bare where the wash runs dry.
    reserve = _smoothstep(0.16, 0.3, bleed)
    reserve *= _F32(-0.85)
    reserve += _F32(1.0)
    clear -= _F32(1.0)
    clear *= reserve
    clear *= _F32(-1.35)  # now: how much pigment covers the paper
    if factor > 1:
        t, cover, pooled = cv.upsample(t), cv.upsample(clear), cv.upsample(pooled)
    else:
        cover = clear
    tooth = _paper(cv, rng, st.grain)
    # Granulation: pigment settles into the paper's tooth.
    cover *= _F32(0.85) + tooth * _F32(1.5)
    _clip(cover, 0.0, 1.0, out=cover)
    t += tooth * _F32(0.1)
    _clip(t, 0.0, 1.0, out=t)
    _clip(pooled, 0.0, 1.0, out=pooled)
    # rgb = paper * lift * (1 - pooled*cover) * ((1 - cover) + pigment * cover), mixed towards
    # the pencil colour by the line work: 1-channel weights first, three-channel work last.
    lift = tooth * _F32(0.3)
    lift += _F32(1.0)
    edge_pool = pooled * _F32(1.4)
    pooled *= cover
    pooled *= _F32(-0.35)
    pooled += _F32(1.0)
    lift *= pooled
    pencil = layers.line * _F32(0.22)
    keep = _F32(1.0) - pencil
    lift *= keep
    paper_rgb = color.mix(pal.lightest, (0.99, 0.98, 0.95), 0.8)
    pencil_rgb = color.scale(pal.darkest, 0.7)
    rgb = _map_lut(pal.lut, t)
    bare = _F32(1.0) - cover
    bare *= lift
    cover *= lift
    edge_pool *= cover
    dry = _F32(1.0) - edge_pool
    scratch = np.empty_like(cover)
    for c in range(3):
        pigment = rgb[c]
        # Pooled edges hold more of the same pigment: darker in its own hue, not grey.
        np.multiply(pigment, edge_pool, out=scratch)
        scratch += dry
        pigment *= cover
        pigment *= scratch
        pigment *= _F32(paper_rgb[c])
        np.multiply(bare, _F32(paper_rgb[c]), out=scratch)
        pigment += scratch
        np.multiply(pencil, _F32(pencil_rgb[c]), out=scratch)
        pigment += scratch
    if layers.accent is not None:
        rgb = _mix(rgb, pal.vivid[0], _clip(_blur(layers.accent, 2) * _F32(1.4), 0.0, 0.8))
    return rgb


# Screen angles as Pythagorean unit vectors: exact rotations without libm.
_SCREENS = ((0.6, 0.8), (0.96, 0.28), (0.8, -0.6), (0.28, 0.96))


def _halftone(cv: _Canvas, density: np.ndarray, angle: tuple[float, float], cell_px: float) -> np.ndarray:
    """Rotated dot screen thresholded by density, built from 1-D waves.

    cos(a + b) = cos a cos b - sin a sin b makes a rotated grid separable:
    four outer products instead of evaluating waves per pixel.
    """
    ca, sa = angle
    k = _F32(1.0 / (cell_px * cv.px))
    su, sv = cv.u * k, cv.v * k
    screen = np.zeros(density.shape, dtype=_F32)
    for pu, pv in ((su * _F32(ca), sv * _F32(sa)), (su * _F32(-sa), sv * _F32(ca))):
        cu, cvv = _wave(pu), _wave(pv)
        snu, snv = _wave(pu - _F32(0.25)), _wave(pv - _F32(0.25))
        screen += cu[None, :] * cvv[:, None]
        screen -= snu[None, :] * snv[:, None]
    screen *= _F32(0.25)
    cov = density + screen
    cov -= _F32(0.5)
    cov *= _F32(cell_px * 0.6)
    cov += _F32(0.5)
    return _clip(cov, 0.0, 1.0, out=cov)


def _medium_risograph(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Two-drum riso print: posterised halftones at odd angles, slightly misregistered."""
    paper_rgb = color.mix((0.96, 0.94, 0.89), pal.lightest, 0.2)
    inks = [c for c in pal.vivid if 0.15 < color.luminance(c) < 0.9] or list(pal.vivid)
    ink_a = inks[0]
    ink_b = inks[1 % len(inks)] if len(inks) > 1 else pal.darkest
    ink_line = color.scale(pal.darkest, 0.8)
    # Each drum takes one end of the tone range, so most of the sheet is one ink
    # or bare paper, and the overprint colour appears only where they meet.
    tone = layers.tone
    post_a = _smoothstep(0.32, 0.95, tone)
    post_a *= _F32(3.0)
    np.rint(post_a, out=post_a)
    post_a *= _F32(1.0 / 3.0)
    post_b = _smoothstep(0.62, 0.05, tone)
    post_b *= _F32(3.0)
    np.rint(post_b, out=post_b)
    post_b *= _F32(0.85 / 3.0)
    cell = max(3.0, 9.0 * cv.scale)
    shift = max(1, round(5 * cv.scale))
    offs = [(int(rng.integers(-shift, shift + 1)), int(rng.integers(-shift, shift + 1))) for _ in range(3)]
    cov_a = _halftone(cv, _shift(post_a, *offs[0]), _SCREENS[0], cell)
    cov_b = _halftone(cv, _shift(post_b, *offs[1]), _SCREENS[1], cell)
    speckle = _noise_sep(_lattice(rng), cv.u, cv.v, 110.0, rng.random() * _LATTICE, rng.random() * _LATTICE)
    speckle -= _F32(0.3)
    speckle *= _F32(-(0.25 + 0.6 * st.grain))
    speckle += _F32(1.0)  # now: how evenly the drum laid its ink down
    cov_a *= speckle
    cov_b *= speckle
    lines = _shift(layers.line, *offs[2])
    if layers.accent is not None:
        np.maximum(lines, _shift(layers.accent, *offs[2]), out=lines)
    lines *= speckle
    rgb = np.empty((3, cv.h, cv.w), dtype=_F32)
    tooth = _paper(cv, rng, st.grain)
    tooth *= _F32(0.6)
    tooth += _F32(1.0)
    for c in range(3):
        rgb[c] = tooth * _F32(paper_rgb[c])
    # Inks multiply, as translucent soy inks do on paper.
    for cov, ink in ((cov_a, ink_a), (cov_b, ink_b), (lines, ink_line)):
        _clip(cov, 0.0, 1.0, out=cov)
        for c in range(3):
            rgb[c] *= _F32(1.0) - cov * _F32(1.0 - ink[c])
    return rgb


def _medium_neon(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Glass tubes at night: dark ground, saturated light with a hot core and wide halo."""
    # Night, not void: a floor under the ground keeps the sky readable (and the gate happy).
    ground_rgb = color.mix(color.scale(pal.darkest, 0.35), color.scale(pal.vivid[0], 0.16), 0.5)
    # The sky deepens towards a second palette colour, so the palette reads even between the tubes.
    deep_rgb = color.scale(pal.vivid[1 % len(pal.vivid)], 0.3)
    tubes = [color.with_hls(c, lightness=0.58, s=1.0) for c in pal.vivid[: max(2, len(pal.vivid) - 1)]]
    lut = _ramp(tubes)
    hue = _map_lut(lut, layers.flow if layers.flow is not None else layers.tone)
    src = layers.line
    if layers.accent is not None:
        src = np.maximum(src, layers.accent)
    near = _blur(src, max(2, round(4 * cv.scale)))
    far = _blur(src, max(4, round(22 * cv.scale)))
    # The upper tones glow faintly in the tube colours: nebulae, reflections on wet glass.
    light = _smoothstep(0.4, 1.0, layers.tone)
    light *= _F32(0.45)
    light += _F32(0.03)
    light += src * _F32(1.1)
    light += near * _F32(1.6)
    light += far * _F32(1.3)
    hue *= light
    hot = src * src
    hot *= _F32(0.55)
    for c in range(3):
        hue[c] += layers.tone * _F32(deep_rgb[c] - ground_rgb[c] * 0.5) + _F32(ground_rgb[c] * 0.5)
        hue[c] += hot
    # Soft shoulder instead of a hard clip, so overlapping halos stay coloured.
    shoulder = hue * _F32(0.25)
    shoulder += _F32(1.0)
    hue /= shoulder
    return hue


def _medium_blueprint(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Cyanotype drafting: white line work and a drafting grid on a deep blue ground."""
    bluest = min(pal.stops, key=lambda c: abs(((color.hue(c) - 0.6 + 0.5) % 1.0) - 0.5) - _chroma(c) * 0.2)
    h = color.hue(bluest)
    h = h + (((0.6 - h + 0.5) % 1.0) - 0.5) * 0.6
    ground_rgb = color.with_hls(bluest, h=h, lightness=0.27, s=0.72)
    chalk_rgb = color.mix(pal.lightest, (0.9, 0.95, 1.0), 0.6)
    tooth = _paper(cv, rng, st.grain)
    rgb = _col(ground_rgb) * (_F32(0.82) + layers.tone * _F32(0.3) + tooth * _F32(0.8))
    minor = max(4.0, 16.0 * cv.scale)
    gu = cv.u * _F32(1.0 / (minor * cv.px))
    gv = cv.v * _F32(1.0 / (minor * cv.px))
    grid_u = _clip(_F32(0.9) - np.abs(gu - np.rint(gu)) * _F32(minor), 0.0, 1.0)
    grid_v = _clip(_F32(0.9) - np.abs(gv - np.rint(gv)) * _F32(minor), 0.0, 1.0)
    major_u = _clip(_F32(1.2) - np.abs(gu * _F32(0.2) - np.rint(gu * _F32(0.2))) * _F32(minor * 5), 0.0, 1.0)
    major_v = _clip(_F32(1.2) - np.abs(gv * _F32(0.2) - np.rint(gv * _F32(0.2))) * _F32(minor * 5), 0.0, 1.0)
    grid = np.maximum(
        np.maximum(grid_u[None, :], grid_v[:, None]) * _F32(0.16),
        np.maximum(major_u[None, :], major_v[:, None]) * _F32(0.3),
    )
    tone = layers.tone
    gx, gy = _gradient(tone, 1.0)
    # Levels offset from the motif's flat fills (multiples of 1/4), so fills stay ground.
    contours = _isolines(tone + _F32(0.027), np.maximum(_magnitude(gx, gy), _F32(0.002)), 14.0, _lw(cv, 0.8))
    strokes = np.maximum(grid, contours * _F32(0.5))
    np.maximum(strokes, layers.line * _F32(0.95), out=strokes)
    if layers.accent is not None:
        np.maximum(strokes, layers.accent, out=strokes)
    return _mix(rgb, chalk_rgb, strokes * (_F32(0.9) + tooth))


def _medium_oil(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Loaded brush on canvas: strokes dragged along the flow, each its own mix, ridged edges."""
    flow = layers.flow if layers.flow is not None else layers.tone
    lo = cv.lo(4)
    drift = cv.upsample(_fbm_2d(rng, *lo.grids(), 1.1, 2))
    # A blurred guide keeps strokes a brush-width apart even where the motif is steep.
    guide = _blur(_normalize(flow), max(2, round(10 * cv.scale)))
    guide *= _F32(0.2)
    drift *= _F32(0.3)
    guide += drift
    # A dominant slant keeps strokes long and roughly parallel instead of closing into whorls.
    dx, dy = _unit_vector(rng)
    guide += (cv.u * _F32(dx))[None, :] + (cv.v * _F32(dy))[:, None]
    lanes = 12.0 + 1.2 * st.complexity
    # Staggering lanes patch by patch breaks endless streaks into separate strokes.
    patch = np.floor(_fbm(rng, cv, 8.0 + 6.0 * st.energy, 1) * _F32(5.0))
    g = guide * _F32(lanes)
    g += patch * _F32(0.43)
    lane = np.floor(g)
    across = g - lane
    jitter = _hash01(lane * _F32(0.173) + patch * _F32(0.619), 12.9898)
    jitter -= _F32(0.5)
    tone = _blur(layers.tone, max(1, round(3 * cv.scale)))
    tone += jitter * _F32(0.1 + 0.12 * st.energy)
    _clip(tone, 0.0, 1.0, out=tone)
    rgb = pal.map(tone)
    lines = _blur(layers.line, 2)
    lines *= _F32(0.55)
    rgb = _mix(rgb, color.scale(pal.darkest, 0.6), lines)
    # Paint piles up at a stroke's edges and the bristles score it lengthwise.
    height = across * (_F32(1.0) - across)
    height *= _F32(4.0)
    np.sqrt(height, out=height)
    height += _wave(g * _F32(9.0)) * _F32(0.12)
    gx, gy = _gradient(height, 1.0)
    gx += gy
    gx *= _F32(-0.9 * cv.scale)
    relief = _clip(gx, -0.18, 0.18, out=gx)
    spec = _clip(relief - _F32(0.1), 0.0, 1.0)
    spec *= _F32(1.6)
    relief += _F32(1.0)
    weave = _wave(cv.u * _F32(1.0 / (3.0 * cv.px)))[None, :] * _wave(cv.v * _F32(1.0 / (3.0 * cv.px)))[:, None]
    weave *= _F32(0.02 + 0.08 * st.grain)
    weave += _F32(1.0)
    relief *= weave
    if layers.shade is not None:
        # The motif's modelling shows through the paint, but the brushwork leads.
        relief *= layers.shade * _F32(0.35) + _F32(0.65)
    rgb *= relief[None]
    rgb += spec[None]
    return rgb


_MEDIUM_FNS: dict[str, Callable[[_Layers, _Palette, _Canvas, np.random.Generator, _Style], np.ndarray]] = {
    "ink": _medium_ink,
    "watercolor": _medium_watercolor,
    "risograph": _medium_risograph,
    "neon": _medium_neon,
    "blueprint": _medium_blueprint,
    "oil": _medium_oil,
}


# --------------------------------------------------------------------------- finish


def _contrast_table(amount: float) -> np.ndarray:
    """S-curve through (0, 0), (0.5, 0.5), (1, 1) as an 8-bit lookup: contrast without clipping the ends."""
    k = max(-0.9, min(0.9, 2.0 * (amount - 1.0))) * 2.0
    x = np.arange(256, dtype=np.float64) / 255.0
    y = x + k * x * (1.0 - x) * (x - 0.5)
    return np.clip(y * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def _finish(
    rgb: np.ndarray, layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style
) -> np.ndarray:
    """Light and vignette, bloom, film grain, then 8-bit through the mood's contrast curve."""
    mood = pal.mood
    gain = layers.shade if layers.shade is not None and st.medium not in ("neon", "blueprint", "oil") else None
    if mood.vignette > 0:
        r2 = (cv.u * cv.u)[None, :] + (cv.v * cv.v)[:, None]
        vignette = _F32(1.0) - _clip(r2 - _F32(0.25), 0.0, 2.0) * _F32(mood.vignette * 0.55)
        gain = vignette if gain is None else gain * vignette
    if gain is not None:
        rgb *= gain[None]
    if mood.bloom > 0:
        lum = rgb[0] * _F32(0.2126) + rgb[1] * _F32(0.7152) + rgb[2] * _F32(0.0722)
        glow = _blur(_clip(lum - _F32(0.55), 0.0, 1.0), max(2, round(12 * cv.scale)))
        rgb += _col(color.mix(pal.vivid[0], mood.tint, 0.5)) * (glow * _F32(mood.bloom * 1.2))
    if st.grain > 0:
        noise = rng.random((cv.h, cv.w), dtype=_F32) - _F32(0.5)
        noise *= _F32(0.13 * st.grain)
        rgb += noise[None]
    rgb *= _F32(255.0)
    rgb += _F32(0.5)
    _clip(rgb, 0.0, 255.0, out=rgb)
    levels = rgb.astype(np.uint8)
    # One gather applies the contrast curve and lays the planes out as HxWx3.
    return np.take(_contrast_table(mood.contrast), levels.transpose(1, 2, 0))
