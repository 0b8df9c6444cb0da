"""A collection palette graded by the mood, and the colour ramps and mixes media paint with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from render import color
from render.color import RGB
from render.procedural.fields import F32, clip
from render.procedural.style import Style


@dataclass(frozen=True)
class Mood:
    """How a mood grades the palette and lights the finished frame."""

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
    "serene": Mood(0.72, 0.12, 0.8, 0.10, (0.62, 0.78, 0.86), 0.12, 0.0, 0.0, False),
    "energetic": Mood(1.45, 0.0, 1.28, 0.0, (1.0, 0.35, 0.1), 0.04, 0.22, 0.0, False),
    "mysterious": Mood(0.8, -0.42, 1.12, 0.75, (0.22, 0.16, 0.5), 0.2, 0.3, 0.0, False),
    "playful": Mood(1.5, 0.1, 1.05, 0.0, (1.0, 0.55, 0.8), 0.05, 0.0, 38.0, False),
    "austere": Mood(0.18, 0.04, 1.2, 0.08, (0.5, 0.5, 0.5), 0.0, 0.0, 0.0, True),
    "opulent": Mood(1.2, -0.12, 1.32, 0.5, (1.0, 0.78, 0.3), 0.16, 0.45, 0.0, False),
}


@dataclass(frozen=True)
class Palette:
    """The graded palette, darkest first, and the derived colours media draw with."""

    stops: tuple[RGB, ...]
    vivid: tuple[RGB, ...]  # most chromatic first
    lut: np.ndarray  # (3, 1024) ramp through stops
    mood: Mood

    @classmethod
    def make(cls, colours: Sequence[str], style: Style) -> Palette:
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
        vivid = sorted(graded, key=chroma, reverse=True)
        if mood.reduce and len(stops) > 3:
            stops = sorted({stops[0], stops[-1], vivid[0]}, key=color.luminance)
            vivid = sorted(stops, key=chroma, reverse=True)
        return cls(tuple(stops), tuple(vivid), ramp(stops), mood)

    @property
    def darkest(self) -> RGB:
        return self.stops[0]

    @property
    def lightest(self) -> RGB:
        return self.stops[-1]

    def map(self, tone: np.ndarray) -> np.ndarray:
        return map_lut(self.lut, tone)


def chroma(rgb: RGB) -> float:
    return max(rgb) - min(rgb)


def ramp(stops: Sequence[RGB], size: int = 1024) -> np.ndarray:
    positions = np.linspace(0.0, 1.0, len(stops))
    at = np.linspace(0.0, 1.0, size)
    table = np.array(stops, dtype=np.float64)
    return np.stack([np.interp(at, positions, table[:, c]) for c in range(3)]).astype(F32)


def map_lut(lut: np.ndarray, tone: np.ndarray) -> np.ndarray:
    size = lut.shape[1]
    index = clip(tone * F32(size - 1) + F32(0.5), 0.0, size - 1).astype(np.intp)
    return np.take(lut, index, axis=1)


def broadcast_rgb(rgb: RGB) -> np.ndarray:
    return np.array(rgb, dtype=F32).reshape(3, 1, 1)


def blend(base: np.ndarray, rgb: RGB | np.ndarray, amount: np.ndarray) -> np.ndarray:
    top = broadcast_rgb(rgb) if isinstance(rgb, tuple) else rgb
    out: np.ndarray = base + (top - base) * amount
    return out
