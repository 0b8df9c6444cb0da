"""Palette arithmetic for the renderers: hex parsing, hue rotation, grading."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

from render.errors import InvalidRenderRequest

# Colours here are plain Python float triples in sRGB [0, 1]. Palettes are a
# handful of colours, so scalar code is clearer than numpy and, since colorsys
# uses only + - * /, bit-identical on every IEEE-754 machine.
RGB = tuple[float, float, float]


def parse_hex(colour: str) -> RGB:
    """'#rrggbb' -> (r, g, b) in [0, 1]."""
    text = colour.strip() if isinstance(colour, str) else ""
    if len(text) != 7 or text[0] != "#":
        raise InvalidRenderRequest(f"colour {colour!r} is not #rrggbb")
    try:
        value = int(text[1:], 16)
    except ValueError as exc:
        raise InvalidRenderRequest(f"colour {colour!r} is not #rrggbb") from exc
    return ((value >> 16) / 255.0, ((value >> 8) & 255) / 255.0, (value & 255) / 255.0)


def to_hex(rgb: RGB) -> str:
    r, g, b = (max(0, min(255, int(c * 255.0 + 0.5))) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def parse_palette(colours: Sequence[str]) -> list[RGB]:
    if isinstance(colours, str) or len(colours) < 2:
        raise InvalidRenderRequest("palette needs at least 2 '#rrggbb' colours")
    return [parse_hex(c) for c in colours]


def luminance(rgb: RGB) -> float:
    """Rec. 709 weights on gamma-encoded values: a cheap, stable ordering key."""
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def saturation(rgb: RGB) -> float:
    return colorsys.rgb_to_hls(*rgb)[2]


def hue(rgb: RGB) -> float:
    """Hue in turns [0, 1)."""
    return colorsys.rgb_to_hls(*rgb)[0]


def rotate_hue(rgb: RGB, degrees: float) -> RGB:
    h, lightness, s = colorsys.rgb_to_hls(*rgb)
    return colorsys.hls_to_rgb((h + degrees / 360.0) % 1.0, lightness, s)


def with_hls(rgb: RGB, *, h: float | None = None, lightness: float | None = None, s: float | None = None) -> RGB:
    h0, l0, s0 = colorsys.rgb_to_hls(*rgb)
    return colorsys.hls_to_rgb(
        h0 if h is None else h % 1.0,
        l0 if lightness is None else _unit(lightness),
        s0 if s is None else _unit(s),
    )


def saturate(rgb: RGB, factor: float) -> RGB:
    """Scale chroma around the colour's own grey; factor > 1 pushes it out."""
    grey = luminance(rgb)
    return clamp(tuple(grey + (c - grey) * factor for c in rgb))  # type: ignore[arg-type]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def scale(rgb: RGB, factor: float) -> RGB:
    return clamp((rgb[0] * factor, rgb[1] * factor, rgb[2] * factor))


def clamp(rgb: RGB) -> RGB:
    return (_unit(rgb[0]), _unit(rgb[1]), _unit(rgb[2]))


def distance(a: RGB, b: RGB) -> float:
    return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2)


def _unit(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
