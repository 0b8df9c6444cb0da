"""The last pass over every frame: light, vignette, bloom, film grain and the 8-bit contrast curve."""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas
from render.procedural.fields import F32, blur, clip
from render.procedural.layers import Layers
from render.procedural.palette import Palette, broadcast_rgb
from render.procedural.style import Style


def _contrast_table(amount: float) -> np.ndarray:
    """S-curve through (0, 0), (0.5, 0.5), (1, 1) as an 8-bit lookup: contrast without clipping the ends."""
    k = max(-0.9, min(0.9, 2.0 * (amount - 1.0))) * 2.0
    x = np.arange(256, dtype=np.float64) / 255.0
    y = x + k * x * (1.0 - x) * (x - 0.5)
    return np.clip(y * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def finish(
    rgb: np.ndarray, layers: Layers, pal: Palette, cv: Canvas, rng: np.random.Generator, st: Style
) -> np.ndarray:
    """Light and vignette, bloom, film grain, then 8-bit through the mood's contrast curve."""
    mood = pal.mood
    gain = layers.shade if layers.shade is not None and st.medium not in ("neon", "blueprint", "oil") else None
    if mood.vignette > 0:
        r2 = (cv.u * cv.u)[None, :] + (cv.v * cv.v)[:, None]
        vignette = F32(1.0) - clip(r2 - F32(0.25), 0.0, 2.0) * F32(mood.vignette * 0.55)
        gain = vignette if gain is None else gain * vignette
    if gain is not None:
        rgb *= gain[None]
    if mood.bloom > 0:
        lum = rgb[0] * F32(0.2126) + rgb[1] * F32(0.7152) + rgb[2] * F32(0.0722)
        glow = blur(clip(lum - F32(0.55), 0.0, 1.0), max(2, round(12 * cv.scale)))
        rgb += broadcast_rgb(color.mix(pal.vivid[0], mood.tint, 0.5)) * (glow * F32(mood.bloom * 1.2))
    if st.grain > 0:
        noise = rng.random((cv.h, cv.w), dtype=F32) - F32(0.5)
        noise *= F32(0.13 * st.grain)
        rgb += noise[None]
    rgb *= F32(255.0)
    rgb += F32(0.5)
    clip(rgb, 0.0, 255.0, out=rgb)
    levels = rgb.astype(np.uint8)
    # One gather applies the contrast curve and lays the planes out as HxWx3.
    return np.take(_contrast_table(mood.contrast), levels.transpose(1, 2, 0))
