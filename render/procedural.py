"""Deterministic CPU renderer: StyleParams + palette + seed -> a generative artwork."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from personalization.style import StyleParams
from render import color
from render.color import RGB
from render.errors import InvalidRenderRequest
from render.result import RenderResult, pixel_sha256

RENDERER = "procedural"
# Bump whenever any input can produce different pixels: tokens record it, and
# `verify` re-renders with the version that made them.
RENDERER_VERSION = "1.0.0"

MEDIA = ("ink", "watercolor", "risograph", "neon", "blueprint", "oil")
MOTIFS = ("flow", "rings", "grid", "constellation", "terrain", "shards")
MOODS = ("serene", "energetic", "mysterious", "playful", "austere", "opulent")

# zlib level 1 rather than Pillow's 6: on these grainy images level 6 costs
# several times the CPU for a file only a few per cent smaller, and the PNG is
# pinned once and then served through a CDN. optimize=True (an extra search
# over filters) is off for the same reason.
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
    """Render params into an HxWx3 uint8 array; same inputs, same bytes, on any machine."""
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
    "serene": _Mood(0.62, 0.22, 0.78, 0.10, (0.62, 0.78, 0.86), 0.14, 0.0, 0.0, False),
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
    index = np.clip(tone * _F32(size - 1) + _F32(0.5), 0, size - 1).astype(np.intp)
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
        i0, i1, tx = _resample_axis(self.w, lo.shape[1])
        a = lo[:, i0]
        rows = a + (lo[:, i1] - a) * tx
        j0, j1, ty = _resample_axis(self.h, lo.shape[0])
        r0 = rows[j0]
        out = rows[j1]
        out -= r0
        out *= ty[:, None]
        out += r0
        return out


def _lw(cv: _Canvas, width_at_1024: float) -> float:
    """Line width in pixels: scaled with the image, but never thinner than a pixel."""
    return max(0.9, width_at_1024 * cv.scale)


def _resample_axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(_F32)


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (_F32(3.0) - _F32(2.0) * t)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - _F32(e0)) * _F32(1.0 / (e1 - e0)), 0.0, 1.0)
    return _smooth(t)


def _wave(x: np.ndarray) -> np.ndarray:
    """Smooth periodic wave with period 1, 1 at integers and -1 at halves (a cosine stand-in)."""
    t = x - np.floor(x)
    p = np.abs(t - _F32(0.5)) * _F32(4.0) - _F32(1.0)
    return p * (_F32(1.5) - _F32(0.5) * p * p)


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
    a = lat[:, i0]
    rows = a + (lat[:, i1] - a) * tx
    j0, j1, ty = _axis(v, freq, oy)
    r0 = rows[j0]
    out = rows[j1]
    out -= r0
    out *= ty[:, None]
    out += r0
    return out


def _noise_1d(rng: np.random.Generator, x: np.ndarray, freq: float) -> np.ndarray:
    table = rng.random(_LATTICE, dtype=_F32)
    i0, i1, t = _axis(x, freq, rng.random() * _LATTICE)
    a = table[i0]
    return a + (table[i1] - a) * t


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
    return top + (bottom - top) * ty


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
    return np.sqrt(gx * gx + gy * gy) + _F32(1e-6)


def _isolines(field: np.ndarray, grad: np.ndarray | float, count: float, width_px: np.ndarray | float) -> np.ndarray:
    """Anti-aliased level lines field*count == integer, `width_px` wide wherever the slope is."""
    a = field * _F32(count)
    d = np.abs(a - np.rint(a))
    d /= grad * _F32(count) if isinstance(grad, np.ndarray) else _F32(grad * count)
    out = (width_px * _F32(0.5) + _F32(0.5)) - d if isinstance(width_px, np.ndarray) else _F32(width_px * 0.5 + 0.5) - d
    return np.clip(out, 0.0, 1.0, out=out)


def _blur(field: np.ndarray, factor: int) -> np.ndarray:
    """Wide soft blur: box-downsample (fixed summation order), smooth, bilinear upsample."""
    h, w = field.shape
    factor = max(1, min(factor, h // 4, w // 4))
    if factor == 1:
        return field.copy()
    hh, ww = -(-h // factor) * factor, -(-w // factor) * factor
    padded = np.pad(field, ((0, hh - h), (0, ww - w)), mode="edge") if (hh, ww) != (h, w) else field
    small = np.zeros((hh // factor, ww), dtype=_F32)
    for k in range(factor):
        small += padded[k::factor]
    cols = np.zeros((hh // factor, ww // factor), dtype=_F32)
    for k in range(factor):
        cols += small[:, k::factor]
    cols *= _F32(1.0 / (factor * factor))
    cols = _tent(_tent(cols))
    i0, i1, tx = _resample_axis(w, cols.shape[1])
    j0, j1, ty = _resample_axis(h, cols.shape[0])
    a = cols[:, i0]
    rows = a + (cols[:, i1] - a) * tx
    r0 = rows[j0]
    out = rows[j1]
    out -= r0
    out *= ty[:, None]
    out += r0
    return out


def _tent(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, mode="edge")
    y = p[1:-1, :-2] + p[1:-1, 1:-1] * _F32(2.0) + p[1:-1, 2:]
    y2 = np.pad(y, ((1, 1), (0, 0)), mode="edge")
    return (y2[:-2] + y2[1:-1] * _F32(2.0) + y2[2:]) * _F32(1.0 / 16.0)


def _shift(field: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by whole pixels, repeating the edge (risograph misregistration)."""
    h, w = field.shape
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return field[rows][:, cols]


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
            r = r2**0.5
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
    pen = _fbm_sep(rng, cv.u, cv.v, 2.5, 2)
    width = np.maximum((pen * _F32(2.2) + _F32(0.25)) * _F32(1.7 * cv.scale), _F32(0.9))
    line = _isolines(tone, grad, 7 + 3.2 * c, width)
    return _Layers(tone=tone, line=line, flow=tone)


def _motif_rings(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """Overlapping discs carved with concentric rings that wobble with energy."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    wobble = (_fbm_sep(rng, u, v, 1.6 + 2.5 * e, 3) - _F32(0.5)) * _F32(0.004 + 0.16 * e * e + 0.04 * e)
    cx0, cy0 = rng.random() * 1.2 - 0.6, rng.random() * 1.2 - 0.6
    d0 = np.sqrt(((u - _F32(cx0)) ** 2)[None, :] + ((v - _F32(cy0)) ** 2)[:, None]) + wobble
    tone = np.clip(_F32(0.05) + d0 * _F32(0.18), 0.0, 0.35)
    line = _isolines(d0, cv.px, 9 + 2 * c, _lw(cv, 0.8)) * _F32(0.45)
    shade = np.ones((cv.h, cv.w), dtype=_F32)
    accent = np.zeros((cv.h, cv.w), dtype=_F32)
    n_discs = 2 + c // 2
    radii = sorted((0.18 + 0.62 * rng.random() ** 1.3 for _ in range(n_discs)), reverse=True)
    stop_choices = [0.2, 0.45, 0.7, 0.95, 0.6, 0.85, 0.33]
    for k, r in enumerate(radii):
        cx, cy = rng.random() * 1.8 - 0.9, rng.random() * 1.8 - 0.9
        if k == 0:
            cx, cy = cx * 0.4, cy * 0.4
        d = np.sqrt(((u - _F32(cx)) ** 2)[None, :] + ((v - _F32(cy)) ** 2)[:, None])
        d += wobble * _F32(1.0 + 0.6 * k)
        inside = np.clip((_F32(r) - d) * _F32(1.0 / cv.px) + _F32(0.5), 0.0, 1.0)
        tone += (_F32(stop_choices[(k + int(rng.integers(0, 3))) % len(stop_choices)]) - tone) * inside
        rings = _isolines(d, cv.px, (3 + c * 0.9) / r, _lw(cv, 0.7 + 1.6 * rng.random()))
        rim = np.clip(_F32(_lw(cv, 2.2) * 0.5 + 0.5) - np.abs(d - _F32(r)) * _F32(1.0 / cv.px), 0.0, 1.0)
        line += (rings - line) * inside
        np.maximum(line, rim, out=line)
        shade += (_F32(1.12) - d * _F32(0.45 / r) - shade) * inside
        core = _F32(1.0) - d * _F32(1.0 / (0.006 + 0.01 * r))
        np.maximum(accent, core, out=accent)
    np.clip(accent, 0.0, 1.0, out=accent)
    return _Layers(tone=tone, line=line, accent=accent, shade=shade, flow=d0 * _F32(0.5))


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
    inside = np.clip((_F32(0.5) - ra) * _F32(cell_px) + _F32(0.5), 0.0, 1.0)
    ta = np.take(tone_a, idx)
    tb = np.take(tone_b, idx)
    tone = tb + (ta - tb) * inside
    strands = 2 + c // 3
    band = np.abs(ra - _F32(0.5))
    line = _isolines(ra - _F32(0.5), 1.0 / cell_px, strands / 0.5, _lw(cv, 1.2) + cell_px * 0.01)
    line *= np.clip((_F32(0.27) - band) * _F32(cell_px), 0.0, 1.0)
    shade = _F32(1.06) - band * _F32(0.5)
    flow = (gx + gy) * _F32(0.05)
    return _Layers(tone=tone, line=line, shade=shade, flow=flow)


def _motif_constellation(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """A star chart: nebula clouds, clustered stars and the lines that join them."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    nebula = _fbm_sep(rng, u, v, 1.3 + 1.5 * e, 5, 0.55)
    bx, by = _unit_vector(rng)
    band = np.abs((u * _F32(bx))[None, :] + (v * _F32(by))[:, None] + (nebula - _F32(0.5)) * _F32(0.6))
    milky = _F32(1.0) / (_F32(1.0) + band * band * _F32(9.0))
    # Mid-range tone: paper media show a pale sky, light media a faint nebula.
    tone = _F32(0.38) + _smoothstep(0.35, 0.9, nebula) * _F32(0.22) + milky * nebula * _F32(0.3)
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
        size = max(0.8, (1.5 + 4.0 * rng.random() ** 2) * cv.scale)
        spikes = i % 3 == 0 and e > 0.2
        _draw_star(accent, cv, x, y, size, (6.0 + 22.0 * e) * cv.scale if spikes else 0.0)
        _draw_ring(line, cv, x, y, size * 2.6, _lw(cv, 0.8))
    dust = 250 + 120 * c
    flat = accent.reshape(-1)
    picks = np.unique(rng.integers(0, cv.h * cv.w, dust))
    flat[picks] = np.maximum(flat[picks], rng.random(picks.shape[0], dtype=_F32) * _F32(0.8))
    tone = tone + accent * _F32(0.6)
    return _Layers(tone=np.clip(tone, 0.0, 1.0), line=line, accent=accent, flow=nebula)


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
        dists = [((pts[a][0] - p[0]) ** 2 + (pts[a][1] - p[1]) ** 2, j) for j, p in enumerate(pts) if j != a]
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
    t = np.clip((pu * _F32(dx) + pv * _F32(dy)) * _F32(inv), 0.0, 1.0)
    ex = pu - t * _F32(dx)
    ey = pv - t * _F32(dy)
    dist = np.sqrt(ex * ex + ey * ey) * _F32(1.0 / cv.px)
    cov = np.clip(_F32(width_px * 0.5 + 0.5) - dist, 0.0, 1.0)
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
        along = np.clip(_F32(1.0) - ax * _F32(1.0 / spike_px), 0.0, 1.0)
        across = np.clip(_F32(1.0) - ay * _F32(1.0 / max(0.8, size_px * 0.25)), 0.0, 1.0)
        along2 = np.clip(_F32(1.0) - ay * _F32(1.0 / spike_px), 0.0, 1.0)
        across2 = np.clip(_F32(1.0) - ax * _F32(1.0 / max(0.8, size_px * 0.25)), 0.0, 1.0)
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
    cov = np.clip(_F32(width_px * 0.5 + 0.5) - np.abs(r - _F32(radius_px)), 0.0, 1.0) * _F32(0.7)
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
    height += (_fbm_sep(rng, cv.u, cv.v, 24.0, 2) - _F32(0.5)) * _F32(0.012 + 0.03 * e)
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
    shade = np.clip(shade, 0.45, 1.5) * land + (_F32(1.0) - land)
    tone = height * land + (_F32(0.12) + height * _F32(0.3)) * (_F32(1.0) - land)
    return _Layers(tone=tone, line=line, shade=shade, flow=height)


def _motif_shards(cv: _Canvas, rng: np.random.Generator, st: _Style) -> _Layers:
    """Shattered glass: radial and concentric cracks from an impact, faceted cells."""
    e, c = st.energy, st.complexity
    u, v = cv.u, cv.v
    fx, fy = rng.random() * 1.0 - 0.5, rng.random() * 1.0 - 0.5
    jag = (_fbm_sep(rng, u, v, 3.0 + 6.0 * e, 3) - _F32(0.5)) * _F32(0.004 + 0.16 * e)
    cell_id = np.zeros((cv.h, cv.w), dtype=_F32)
    crack = np.full((cv.h, cv.w), 1e3, dtype=_F32)
    n_radial = 3 + c
    for k in range(n_radial):
        base = (k + 0.3 + 0.4 * rng.random()) / n_radial
        ax, ay = _direction(base * 0.5)
        ox = fx + (rng.random() - 0.5) * 0.08
        oy = fy + (rng.random() - 0.5) * 0.08
        d = ((u - _F32(ox)) * _F32(-ay))[None, :] + ((v - _F32(oy)) * _F32(ax))[:, None]
        d += jag
        np.add(cell_id, _F32(rng.random()), out=cell_id, where=d > 0)
        np.minimum(crack, np.abs(d), out=crack)
    dist = np.sqrt(((u - _F32(fx)) ** 2)[None, :] + ((v - _F32(fy)) ** 2)[:, None]) + jag * _F32(1.5)
    n_rings = 1 + c // 2
    for k in range(n_rings):
        r = 0.12 + (k + rng.random() * 0.6) * (1.5 / n_rings)
        d = dist - _F32(r)
        np.add(cell_id, _F32(rng.random()), out=cell_id, where=d > 0)
        np.minimum(crack, np.abs(d), out=crack)
    for _ in range(c // 2):
        ax, ay = _unit_vector(rng)
        ox, oy = rng.random() * 1.8 - 0.9, rng.random() * 1.8 - 0.9
        d = ((u - _F32(ox)) * _F32(-ay))[None, :] + ((v - _F32(oy)) * _F32(ax))[:, None] + jag
        np.add(cell_id, _F32(rng.random()), out=cell_id, where=d > 0)
        np.minimum(crack, np.abs(d), out=crack)
    h1 = _hash01(cell_id, 12.9898)
    h2 = _hash01(cell_id, 78.233) - _F32(0.5)
    h3 = _hash01(cell_id, 39.346) - _F32(0.5)
    stops = _F32(4.0)
    tone = np.floor(h1 * _F32(4.999)) * _F32(1.0 / stops)
    facet = (u[None, :] * h2 + v[:, None] * h3) * _F32(0.9)
    shade = _F32(1.0) + facet
    crack_px = crack * _F32(1.0 / cv.px)
    width = _lw(cv, 1.0 + 1.5 * e)
    line = np.clip(_F32(width * 0.5 + 0.5) - crack_px, 0.0, 1.0)
    glint = _F32(1.0) / (_F32(1.0) + dist * dist * _F32(400.0))
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
    """Mirror-fold every layer: the fold line walks in from the edge as symmetry grows.

    0..0.5 moves a vertical mirror from the left edge to the centre, 0.5..0.85
    brings in a horizontal one, and >= 0.9 adds the diagonal (square canvases)
    for an eightfold kaleidoscope. Folding pixels rather than coordinates keeps
    it exact and motif-agnostic.
    """
    h, w = layers.tone.shape
    xc = round(min(symmetry, 0.5) * w)
    yc = round(min(max(symmetry - 0.5, 0.0) / 0.35, 1.0) * 0.5 * h)
    diagonal = symmetry >= 0.9 and h == w
    if xc == 0 and yc == 0 and not diagonal:
        return layers
    cols = np.arange(w)
    cols = np.where(cols < xc, 2 * xc - 1 - cols, cols)
    rows = np.arange(h)
    rows = np.where(rows < yc, 2 * yc - 1 - rows, rows)
    lower = np.tri(h, w, dtype=bool) if diagonal else None

    def fold(field: np.ndarray | None) -> np.ndarray | None:
        if field is None:
            return None
        if lower is not None:
            field = np.where(lower, field, field.T)
        return field[rows][:, cols]

    return replace(
        layers,
        tone=fold(layers.tone),
        line=fold(layers.line),
        accent=fold(layers.accent),
        shade=fold(layers.shade),
        flow=fold(layers.flow),
    )


# --------------------------------------------------------------------------- media


def _paper(cv: _Canvas, rng: np.random.Generator, grain: float) -> np.ndarray:
    """Paper tooth and mottling, ~0 mean; grain sets how much shows."""
    fibre = _fbm_sep(rng, cv.u, cv.v, 90.0, 2) - _F32(0.5)
    mottle = _fbm_sep(rng, cv.u, cv.v, 5.0, 3) - _F32(0.5)
    return fibre * _F32(0.05 + 0.35 * grain) + mottle * _F32(0.03 + 0.22 * grain)


def _mix(base: np.ndarray, rgb: RGB | np.ndarray, amount: np.ndarray) -> np.ndarray:
    top = _col(rgb) if isinstance(rgb, tuple) else rgb
    return base + (top - base) * amount


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
    dark = np.clip((_F32(0.4) - tone) * _F32(1.0 / 0.25), 0.0, 1.0)
    diag = (cv.u[None, :] + cv.v[:, None]) * _F32(1.0 / (period * cv.px * 1.4142))
    hatch = np.clip(dark * _F32(period * 0.45) + _F32(0.5) - np.abs(diag - np.rint(diag)) * _F32(period), 0.0, 1.0)
    anti = (cv.u[None, :] - cv.v[:, None]) * _F32(1.0 / (period * cv.px * 1.4142))
    dark2 = np.clip(dark * _F32(2.0) - _F32(1.0), 0.0, 1.0)
    cross = np.clip(dark2 * _F32(period * 0.45) + _F32(0.5) - np.abs(anti - np.rint(anti)) * _F32(period), 0.0, 1.0)
    # Dry brush: the loaded brush skips over the paper's tooth at the edges of a stroke.
    dry = _fbm_sep(rng, cv.u, cv.v, 45.0, 2)
    solid = _smoothstep(0.0, 0.05, _F32(0.13) - tone + (dry - _F32(0.5)) * _F32(0.08))
    strokes = np.maximum(np.maximum(hatch, cross) * _F32(0.85), solid)
    np.maximum(strokes, layers.line * (_F32(0.6) + _smoothstep(0.3, 0.5, dry) * _F32(0.4)), out=strokes)
    if layers.accent is not None:
        np.maximum(strokes, np.clip(layers.accent * _F32(1.6) - _F32(0.3), 0.0, 1.0), out=strokes)
    return _mix(rgb, ink_rgb, strokes)


def _medium_watercolor(
    layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style
) -> np.ndarray:
    """Transparent washes on cold-press paper: blooms, pooled dark edges, reserved whites."""
    paper_rgb = color.mix(pal.lightest, (0.99, 0.98, 0.95), 0.8)
    tooth = _paper(cv, rng, st.grain)
    soft = _blur(layers.tone, max(2, round(5 * cv.scale)))
    bleed = _fbm_sep(rng, cv.u, cv.v, 2.6, 4) - _F32(0.5)
    t = np.clip(soft + bleed * _F32(0.14) + tooth * _F32(0.1), 0.0, 1.0)
    pigment = pal.map(t)
    granule = _fbm_sep(rng, cv.u, cv.v, 60.0, 2)
    clear = np.ones((cv.h, cv.w), dtype=_F32)
    pooled = np.zeros((cv.h, cv.w), dtype=_F32)
    for level in (0.16, 0.38, 0.6, 0.8):
        mask = _smoothstep(level - 0.012, level + 0.012, t)
        edge = mask - _blur(mask, max(2, round(4 * cv.scale)))
        np.maximum(pooled, edge, out=pooled)
        clear *= _F32(1.0) - mask * _F32(0.42)
    # Reserved whites: the painter leaves paper bare where the wash runs dry.
    reserve = _smoothstep(0.16, 0.3, bleed + tooth * _F32(0.3))
    cover = (_F32(1.0) - clear) * (_F32(1.0) - reserve * _F32(0.85))
    cover *= _F32(0.8) + granule * _F32(0.25 + 0.5 * st.grain)
    cover = np.clip(cover * _F32(1.35), 0.0, 1.0)
    rgb = np.empty((3, cv.h, cv.w), dtype=_F32)
    rgb[:] = _col(paper_rgb)
    rgb *= _F32(1.0) + tooth * _F32(0.3)
    rgb *= _F32(1.0) - (_F32(1.0) - pigment) * cover
    rgb *= _F32(1.0) - np.clip(pooled, 0.0, 1.0) * _F32(1.2) * cover
    rgb = _mix(rgb, color.scale(pal.darkest, 0.7), layers.line * _F32(0.3))
    if layers.accent is not None:
        rgb = _mix(rgb, pal.vivid[0], np.clip(_blur(layers.accent, 2) * _F32(1.4), 0.0, 0.8))
    return rgb


# Screen angles as Pythagorean unit vectors: exact rotations without libm.
_SCREENS = ((0.6, 0.8), (0.96, 0.28), (0.8, -0.6), (0.28, 0.96))


def _halftone(cv: _Canvas, density: np.ndarray, angle: tuple[float, float], cell_px: float) -> np.ndarray:
    ca, sa = angle
    k = _F32(1.0 / (cell_px * cv.px))
    su = cv.u * k
    sv = cv.v * k
    s = (su * _F32(ca))[None, :] + (sv * _F32(sa))[:, None]
    t = (su * _F32(-sa))[None, :] + (sv * _F32(ca))[:, None]
    screen = _F32(0.5) - (_wave(s) + _wave(t)) * _F32(0.25)
    return np.clip((density - screen) * _F32(cell_px * 0.6) + _F32(0.5), 0.0, 1.0)


def _medium_risograph(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Two-drum riso print: halftone screens at odd angles, posterised, slightly misregistered."""
    paper_rgb = color.mix((0.96, 0.94, 0.89), pal.lightest, 0.2)
    inks = [c for c in pal.vivid if 0.15 < color.luminance(c) < 0.9] or list(pal.vivid)
    ink_a = inks[0]
    ink_b = inks[1 % len(inks)] if len(inks) > 1 else pal.darkest
    ink_line = color.scale(pal.darkest, 0.8)
    levels = _F32(3.0)
    tone = layers.tone
    post_a = np.floor(tone * levels + _F32(0.5)) * _F32(1.0 / 3.0)
    post_b = np.floor((_F32(1.0) - tone) * levels + _F32(0.3)) * _F32(1.0 / 3.0)
    cell = max(2.5, 6.5 * cv.scale)
    shift = max(1, round(4 * cv.scale))
    offs = [(int(rng.integers(-shift, shift + 1)), int(rng.integers(-shift, shift + 1))) for _ in range(3)]
    cov_a = _halftone(cv, _shift(post_a, *offs[0]), _SCREENS[0], cell)
    cov_b = _halftone(cv, _shift(post_b * _F32(0.85), *offs[1]), _SCREENS[1], cell)
    speckle = _fbm_sep(rng, cv.u, cv.v, 110.0, 2)
    unevenness = _F32(1.0) - (speckle - _F32(0.3)) * _F32(0.25 + 0.6 * st.grain)
    cov_a *= unevenness
    cov_b *= unevenness
    lines = _shift(layers.line, *offs[2])
    if layers.accent is not None:
        lines = np.maximum(lines, _shift(layers.accent, *offs[2]))
    rgb = np.empty((3, cv.h, cv.w), dtype=_F32)
    rgb[:] = _col(paper_rgb)
    rgb *= _F32(1.0) + (_paper(cv, rng, st.grain) * _F32(0.6))
    for cov, ink in ((cov_a, ink_a), (cov_b, ink_b), (lines * unevenness, ink_line)):
        rgb *= _F32(1.0) - (_F32(1.0) - _col(ink)) * np.clip(cov, 0.0, 1.0)
    return rgb


def _medium_neon(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Glass tubes at night: dark ground, saturated light with a hot core and wide halo."""
    # Night, not void: a floor under the ground keeps the sky readable (and the gate happy).
    ground_rgb = color.mix(color.scale(pal.darkest, 0.35), color.scale(pal.vivid[0], 0.16), 0.5)
    tubes = [color.with_hls(c, lightness=0.58, s=1.0) for c in pal.vivid[: max(2, len(pal.vivid) - 1)]]
    lut = _ramp(tubes)
    hue = _map_lut(lut, layers.flow if layers.flow is not None else layers.tone)
    src = layers.line
    if layers.accent is not None:
        src = np.maximum(src, layers.accent)
    near = _blur(src, max(2, round(4 * cv.scale)))
    far = _blur(src, max(4, round(22 * cv.scale)))
    light = src * _F32(1.1) + near * _F32(1.6) + far * _F32(1.3)
    rgb = _col(ground_rgb) * (_F32(0.55) + layers.tone * _F32(0.9))
    haze = _map_lut(pal.lut, layers.tone) * _F32(0.08)
    rgb = rgb + haze + hue * light
    rgb += (src * src * _F32(0.55))[None]
    return rgb / (_F32(1.0) + rgb * _F32(0.25))


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
    grid_u = np.clip(_F32(0.9) - np.abs(gu - np.rint(gu)) * _F32(minor), 0.0, 1.0)
    grid_v = np.clip(_F32(0.9) - np.abs(gv - np.rint(gv)) * _F32(minor), 0.0, 1.0)
    major_u = np.clip(_F32(1.2) - np.abs(gu * _F32(0.2) - np.rint(gu * _F32(0.2))) * _F32(minor * 5), 0.0, 1.0)
    major_v = np.clip(_F32(1.2) - np.abs(gv * _F32(0.2) - np.rint(gv * _F32(0.2))) * _F32(minor * 5), 0.0, 1.0)
    grid = np.maximum(
        np.maximum(grid_u[None, :], grid_v[:, None]) * _F32(0.16),
        np.maximum(major_u[None, :], major_v[:, None]) * _F32(0.3),
    )
    tone = layers.tone
    gx, gy = _gradient(tone, 1.0)
    contours = _isolines(tone, np.maximum(_magnitude(gx, gy), _F32(0.002)), 14.0, _lw(cv, 0.8))
    strokes = np.maximum(grid, contours * _F32(0.5))
    np.maximum(strokes, layers.line * _F32(0.95), out=strokes)
    if layers.accent is not None:
        np.maximum(strokes, layers.accent, out=strokes)
    return _mix(rgb, chalk_rgb, strokes * (_F32(0.9) + tooth))


def _medium_oil(layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style) -> np.ndarray:
    """Loaded brush on canvas: lanes of paint dragged along the flow, impasto ridges catching light."""
    flow = layers.flow if layers.flow is not None else layers.tone
    lo = cv.lo(4)
    drift = cv.upsample(_fbm_2d(rng, *lo.grids(), 1.1, 2))
    guide = _normalize(flow) * _F32(0.8) + drift * _F32(0.7)
    lanes = 22.0 + 2.5 * st.complexity
    # Staggering lanes patch by patch breaks endless streaks into separate strokes.
    patch = np.floor(_fbm_sep(rng, cv.u, cv.v, 4.0 + 4.0 * st.energy, 1) * _F32(7.0))
    g = guide * _F32(lanes) + patch * _F32(0.43)
    lane = np.floor(g)
    across = g - lane
    jitter = _hash01(lane * _F32(0.173) + patch * _F32(0.619), 12.9898) - _F32(0.5)
    tone = _blur(layers.tone, max(1, round(3 * cv.scale)))
    tone = np.clip(tone + jitter * _F32(0.12 + 0.14 * st.energy), 0.0, 1.0)
    rgb = pal.map(tone)
    rgb = _mix(rgb, color.scale(pal.darkest, 0.6), _blur(layers.line, 1) * _F32(0.6))
    profile = across * (_F32(1.0) - across) * _F32(4.0)
    bristle = _wave(g * _F32(7.0)) * _F32(0.2)
    height = np.sqrt(profile) + bristle
    gx, gy = _gradient(height, 1.0)
    relief = (gx + gy) * _F32(-2.5 * cv.scale)
    relief = np.clip(relief, -0.3, 0.3)
    rgb *= (_F32(1.0) + relief)[None]
    spec = np.clip(relief - _F32(0.12), 0.0, 1.0)
    rgb += (spec * _F32(2.0))[None]
    weave = _wave(cv.u * _F32(1.0 / (3.0 * cv.px)))[None, :] * _wave(cv.v * _F32(1.0 / (3.0 * cv.px)))[:, None]
    rgb *= (_F32(1.0) + weave * _F32(0.02 + 0.1 * st.grain))[None]
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


def _contrast(rgb: np.ndarray, amount: float) -> np.ndarray:
    """S-curve through (0, 0), (0.5, 0.5), (1, 1): contrast without clipping the ends."""
    k = _F32(max(-0.9, min(0.9, 2.0 * (amount - 1.0))) * 2.0)
    return rgb + k * rgb * (_F32(1.0) - rgb) * (rgb - _F32(0.5))


def _finish(
    rgb: np.ndarray, layers: _Layers, pal: _Palette, cv: _Canvas, rng: np.random.Generator, st: _Style
) -> np.ndarray:
    """Mood grade (contrast, bloom, vignette), then film grain, then 8-bit."""
    mood = pal.mood
    if layers.shade is not None and st.medium not in ("neon", "blueprint"):
        rgb = rgb * layers.shade[None]
    rgb = _contrast(np.clip(rgb, 0.0, 1.0), mood.contrast)
    if mood.bloom > 0:
        lum = rgb[0] * _F32(0.2126) + rgb[1] * _F32(0.7152) + rgb[2] * _F32(0.0722)
        glow = _blur(np.clip(lum - _F32(0.55), 0.0, 1.0), max(2, round(12 * cv.scale)))
        rgb = rgb + _col(color.mix(pal.vivid[0], mood.tint, 0.5)) * (glow * _F32(mood.bloom * 2.0))
    if mood.vignette > 0:
        r2 = (cv.u * cv.u)[None, :] + (cv.v * cv.v)[:, None]
        rgb = rgb * (_F32(1.0) - np.clip(r2 - _F32(0.25), 0.0, 2.0) * _F32(mood.vignette * 0.55))[None]
    if st.grain > 0:
        noise = rng.random((cv.h, cv.w), dtype=_F32) - _F32(0.5)
        rgb = rgb + (noise * _F32(0.22 * st.grain))[None]
    out = np.clip(rgb * _F32(255.0) + _F32(0.5), 0.0, 255.0).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 2, 0))
