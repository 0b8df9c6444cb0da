"""The procedural render: synthesize a frame, encode it, optionally behind the quality gate."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from personalization.style import StyleParams
from render.procedural.canvas import Canvas
from render.procedural.finish import finish
from render.procedural.palette import Palette
from render.procedural.registry import MEDIUM_BY_NAME, MOTIF_BY_NAME
from render.procedural.seal import stamp_seal
from render.procedural.style import Style, check_request
from render.procedural.symmetry import fold
from render.quality import QualityThresholds, render_with_gate
from render.result import RenderResult, pixel_sha256

RENDERER = "procedural"
# Bump whenever any input can produce different pixels: tokens record it, and
# `verify` re-renders with the version that made them.
# 1.1.0 added the seal: params without one render exactly as in 1.0.0.
RENDERER_VERSION = "1.1.0"

# zlib level 1 rather than Pillow's default 6. Film grain and paper texture make
# these frames close to incompressible: measured at 1024x1024 (benchmarks/
# render_cpu.py), level 6 takes 1.5-3x the time of level 1 and its files are no
# smaller, often larger; only a grain-free frame saves ~20 %. optimize=True (an
# extra pass searching zlib settings) is off for the same reason.
DEFAULT_PNG_COMPRESS_LEVEL = 1

# Independent random streams, so that changing how one stage draws never
# shifts another stage's numbers.
_STREAM_MOTIF, _STREAM_MEDIUM, _STREAM_FINISH = 1, 2, 3


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([stream, seed]))


def synthesize(params: StyleParams, palette: Sequence[str], seed: int, width: int, height: int) -> np.ndarray:
    """Render params into an HxWx3 uint8 array: same inputs, same bytes, in any process or IEEE-754 machine."""
    check_request(seed, width, height)
    style = Style.from_params(params)
    cv = Canvas.make(height, width)
    pal = Palette.make(palette, style)
    layers = MOTIF_BY_NAME[style.motif](cv, _rng(seed, _STREAM_MOTIF), style)
    layers = fold(layers, style.symmetry)
    rgb = MEDIUM_BY_NAME[style.medium](layers, pal, cv, _rng(seed, _STREAM_MEDIUM), style)
    if style.seal is not None:
        rgb = stamp_seal(rgb, pal, cv, style.seal)
    return finish(rgb, layers, pal, cv, _rng(seed, _STREAM_FINISH), style)


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
