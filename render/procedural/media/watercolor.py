"""The watercolour medium: transparent washes, blooms, pooled edges, reserved whites."""

from __future__ import annotations

import numpy as np

from render import color
from render.procedural.canvas import Canvas
from render.procedural.fields import (
    F32,
    blur,
    clip,
    downsample,
    gradient,
    magnitude,
    smoothstep,
)
from render.procedural.layers import Layers
from render.procedural.noise import fbm
from render.procedural.palette import Palette, blend, map_lut
from render.procedural.paper import paper_texture
from render.procedural.style import Style


def paint_watercolor(layers: Layers, pal: Palette, cv: Canvas, rng: np.random.Generator, st: Style) -> np.ndarray:
    """Transparent washes on cold-press paper: blooms, pooled dark edges, reserved whites."""
    # Washes are soft by nature, so their shapes are worked out at half size.
    factor = 2 if min(cv.h, cv.w) >= 128 else 1
    half = cv.lo(factor) if factor > 1 else cv
    tone = downsample(layers.tone, factor) if factor > 1 else layers.tone
    soft = blur(tone, max(2, round(5 * half.scale)))
    bleed = fbm(rng, half, 2.6, 4)
    bleed -= F32(0.5)
    t = soft + bleed * F32(0.14)
    clip(t, 0.0, 1.0, out=t)
    clear = np.ones(t.shape, dtype=F32)
    pooled = np.zeros(t.shape, dtype=F32)
    gx, gy = gradient(t, half.step)
    grad = magnitude(gx, gy)
    np.maximum(grad, F32(1e-4), out=grad)
    rim_px = max(2.0, 7.0 * cv.scale)
    for level in (0.16, 0.38, 0.6, 0.8):
        # Distance inside the wash edge in full-resolution pixels: a crisp
        # edge, and a rim of pooled pigment that fades a few pixels inwards.
        inside = t - F32(level)
        inside /= grad
        mask = clip(inside + F32(0.5), 0.0, 1.0)
        inside *= F32(-1.0 / rim_px)
        inside += F32(1.0)
        clip(inside, 0.0, 1.0, out=inside)
        inside *= mask
        np.maximum(pooled, inside, out=pooled)
        mask *= F32(-0.42)
        mask += F32(1.0)
        clear *= mask
    # Reserved whites: the painter leaves paper bare where the wash runs dry.
    reserve = smoothstep(0.16, 0.3, bleed)
    reserve *= F32(-0.85)
    reserve += F32(1.0)
    clear -= F32(1.0)
    clear *= reserve
    clear *= F32(-1.35)  # now: how much pigment covers the paper
    if factor > 1:
        t, cover, pooled = cv.upsample(t), cv.upsample(clear), cv.upsample(pooled)
    else:
        cover = clear
    tooth = paper_texture(cv, rng, st.grain)
    # Granulation: pigment settles into the paper's tooth.
    cover *= F32(0.85) + tooth * F32(1.5)
    clip(cover, 0.0, 1.0, out=cover)
    t += tooth * F32(0.1)
    clip(t, 0.0, 1.0, out=t)
    clip(pooled, 0.0, 1.0, out=pooled)
    # rgb = paper * lift * (1 - pooled*cover) * ((1 - cover) + pigment * cover), mixed towards
    # the pencil colour by the line work: 1-channel weights first, three-channel work last.
    lift = tooth * F32(0.3)
    lift += F32(1.0)
    edge_pool = pooled * F32(1.4)
    pooled *= cover
    pooled *= F32(-0.35)
    pooled += F32(1.0)
    lift *= pooled
    pencil = layers.line * F32(0.22)
    keep = F32(1.0) - pencil
    lift *= keep
    paper_rgb = color.mix(pal.lightest, (0.99, 0.98, 0.95), 0.8)
    pencil_rgb = color.scale(pal.darkest, 0.7)
    rgb = map_lut(pal.lut, t)
    bare = F32(1.0) - cover
    bare *= lift
    cover *= lift
    edge_pool *= cover
    dry = F32(1.0) - edge_pool
    scratch = np.empty_like(cover)
    for c in range(3):
        pigment = rgb[c]
        # Pooled edges hold more of the same pigment: darker in its own hue, not grey.
        np.multiply(pigment, edge_pool, out=scratch)
        scratch += dry
        pigment *= cover
        pigment *= scratch
        pigment *= F32(paper_rgb[c])
        np.multiply(bare, F32(paper_rgb[c]), out=scratch)
        pigment += scratch
        np.multiply(pencil, F32(pencil_rgb[c]), out=scratch)
        pigment += scratch
    if layers.accent is not None:
        rgb = blend(rgb, pal.vivid[0], clip(blur(layers.accent, 2) * F32(1.4), 0.0, 0.8))
    return rgb
