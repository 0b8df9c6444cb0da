"""The neon medium: glowing glass tubes on a night ground."""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas
from render.procedural.fields import F32, blur, smoothstep
from render.procedural.layers import Layers
from render.procedural.palette import Palette, map_lut, ramp
from render.procedural.style import Style


def paint_neon(layers: Layers, pal: Palette, cv: Canvas, rng: np.random.Generator, st: Style) -> np.ndarray:
    """Glass tubes at night: dark ground, saturated light with a hot core and wide halo."""
    # Night, not void: a floor under the ground keeps the sky readable (and the gate happy).
    ground_rgb = color.mix(color.scale(pal.darkest, 0.35), color.scale(pal.vivid[0], 0.16), 0.5)
    # The sky deepens towards a second palette colour, so the palette reads even between the tubes.
    deep_rgb = color.scale(pal.vivid[1 % len(pal.vivid)], 0.3)
    tubes = [color.with_hls(c, lightness=0.58, s=1.0) for c in pal.vivid[: max(2, len(pal.vivid) - 1)]]
    lut = ramp(tubes)
    hue = map_lut(lut, layers.flow if layers.flow is not None else layers.tone)
    src = layers.line
    if layers.accent is not None:
        src = np.maximum(src, layers.accent)
    near = blur(src, max(2, round(4 * cv.scale)))
    far = blur(src, max(4, round(22 * cv.scale)))
    # The upper tones glow faintly in the tube colours: nebulae, reflections on wet glass.
    light = smoothstep(0.4, 1.0, layers.tone)
    light *= F32(0.45)
    light += F32(0.03)
    light += src * F32(1.1)
    light += near * F32(1.6)
    light += far * F32(1.3)
    hue *= light
    hot = src * src
    hot *= F32(0.55)
    for c in range(3):
        hue[c] += layers.tone * F32(deep_rgb[c] - ground_rgb[c] * 0.5) + F32(ground_rgb[c] * 0.5)
        hue[c] += hot
    # Soft shoulder instead of a hard clip, so overlapping halos stay coloured.
    shoulder = hue * F32(0.25)
    shoulder += F32(1.0)
    hue /= shoulder
    return hue
