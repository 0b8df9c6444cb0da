"""The CPU renderer: deterministic, every style field visible, distinct across params."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from personalization.style import CHOICE_FIELDS, StyleParams, load_style_dna
from render.errors import InvalidRenderRequest, QualityGateFailed
from render.procedural import (
    MEDIA,
    MOODS,
    MOTIFS,
    RENDERER,
    RENDERER_VERSION,
    render_procedural,
    render_procedural_gated,
    resolve_choice,
    synthesize,
)
from render.quality import QualityThresholds, check_quality, derive_seed
from render.result import pixel_sha256

ROOT = Path(__file__).resolve().parents[3]
DNA = load_style_dna(ROOT / "collections" / "default.toml")
BASE = StyleParams(
    palette="dawn",
    medium="watercolor",
    motif="flow",
    mood="serene",
    complexity=5,
    energy=50,
    symmetry=30,
    grain=40,
    hue_shift=0,
)
NIGHT = StyleParams(
    palette="circuit",
    medium="neon",
    motif="constellation",
    mood="mysterious",
    complexity=6,
    energy=20,
    symmetry=70,
    grain=10,
    hue_shift=12,
)

# Mean absolute difference, in 8-bit levels averaged over every channel of every
# pixel, that counts as a visible change. Rendering is deterministic, so any
# non-zero difference is real rather than noise. 6 levels (~2.4 %) averaged over
# the whole frame is three or more times the ~1-2 level just-noticeable step of
# a uniform shift, and our changes are not uniform: they concentrate in lines,
# fills and colours, where local differences run to tens of levels. It is also
# an order of magnitude above what a negligible change produces (moving a fold
# by one pixel, turning the hue by one degree: < 0.5), so a field whose effect
# got lost fails here. The sparse night scene (mostly dark sky) is the hardest
# case; a typical frame changes by 12-100 levels.
VISIBLE_MEAN_DIFF = 6.0

# pHash convention: two images whose 64-bit DCT hashes differ in <= 10 bits are
# treated as near-duplicates (resizes, re-encodes, small colour edits land at
# 0-8); unrelated images sit around 32 +- 4.
PHASH_NEAR_DUPLICATE = 10


def render(params: StyleParams, seed: int = 42, size: int = 256) -> np.ndarray:
    return synthesize(params, DNA.palettes.get(params.palette, DNA.palettes["dawn"]), seed, size, size)


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_same_inputs_give_identical_pixels_and_a_complete_result() -> None:
    first = render_procedural(BASE, DNA.palettes["dawn"], 7, 256, 192)
    second = render_procedural(BASE, DNA.palettes["dawn"], 7, 256, 192)
    assert first.pixel_sha256 == second.pixel_sha256
    assert first.file_sha256 == second.file_sha256
    decoded = np.asarray(Image.open(io.BytesIO(first.png)).convert("RGB"))
    assert decoded.shape == (192, 256, 3)
    assert pixel_sha256(decoded) == first.pixel_sha256
    assert (first.renderer, first.renderer_version, first.seed, first.attempts) == (
        RENDERER,
        RENDERER_VERSION,
        7,
        1,
    )
    assert first.synth_seconds > 0
    assert first.encode_seconds > 0


def test_pixels_are_identical_in_a_fresh_process() -> None:
    script = (
        "from render.procedural import synthesize\n"
        "from render.result import pixel_sha256\n"
        "from personalization.style import StyleParams\n"
        f"p = StyleParams(**{NIGHT.to_dict()!r})\n"
        f"print(pixel_sha256(synthesize(p, {list(DNA.palettes['circuit'])!r}, 99, 160, 128)))\n"
    )
    # A different hash seed proves no dict/str hash() ordering leaks into pixels.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    here = pixel_sha256(synthesize(NIGHT, DNA.palettes["circuit"], 99, 160, 128))
    assert out.stdout.strip() == here


def test_pixel_hash_is_over_pixels_with_a_size_prefix() -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    other = np.zeros((3, 2, 3), dtype=np.uint8)
    assert pixel_sha256(rgb) != pixel_sha256(other)
    with pytest.raises(ValueError):
        pixel_sha256(rgb.astype(np.float32))


def test_a_different_seed_gives_a_different_picture() -> None:
    assert mean_diff(render(BASE, seed=1), render(BASE, seed=2)) > VISIBLE_MEAN_DIFF


@pytest.mark.parametrize("base", [BASE, NIGHT], ids=["watercolor-flow", "neon-constellation"])
@pytest.mark.parametrize("field", CHOICE_FIELDS)
def test_every_choice_value_changes_the_picture(base: StyleParams, field: str) -> None:
    # The palette field's colours come from the DNA, as the pipeline resolves them.
    reference = render(base)
    for value in DNA.choices(field):
        if value == getattr(base, field):
            continue
        changed = render(replace(base, **{field: value}))
        assert mean_diff(reference, changed) > VISIBLE_MEAN_DIFF, f"{field}={value}"


@pytest.mark.parametrize("base", [BASE, NIGHT], ids=["watercolor-flow", "neon-constellation"])
@pytest.mark.parametrize("field", ["complexity", "energy", "symmetry", "grain", "hue_shift"])
def test_every_numeric_field_changes_the_picture(base: StyleParams, field: str) -> None:
    bounds = DNA.ranges[field]
    low = render(replace(base, **{field: bounds.low}))
    high = render(replace(base, **{field: bounds.high}))
    assert mean_diff(low, high) > VISIBLE_MEAN_DIFF


def test_each_choice_value_is_its_own_treatment() -> None:
    """Not just different from the base: every medium, motif and mood differs from every other."""
    for field, values in (("medium", MEDIA), ("motif", MOTIFS), ("mood", MOODS)):
        frames = {value: render(replace(BASE, **{field: value}), size=128) for value in values}
        for i, a in enumerate(values):
            for b in values[i + 1 :]:
                assert mean_diff(frames[a], frames[b]) > VISIBLE_MEAN_DIFF, f"{field}: {a} vs {b}"


def test_unknown_choice_names_render_through_a_stable_mapping() -> None:
    assert resolve_choice("ink", MEDIA) == "ink"
    assert resolve_choice("pastel", MEDIA) == resolve_choice("pastel", MEDIA)
    assert resolve_choice("pastel", MEDIA) in MEDIA
    odd = replace(BASE, medium="pastel", motif="spirograph", mood="wistful", palette="custom")
    frame = synthesize(odd, ["#112233", "#445566", "#ddeeff"], 5, 96, 64)
    mapped = replace(
        odd,
        medium=resolve_choice("pastel", MEDIA),
        motif=resolve_choice("spirograph", MOTIFS),
        mood=resolve_choice("wistful", MOODS),
    )
    assert frame.shape == (64, 96, 3)
    assert np.array_equal(frame, synthesize(mapped, ["#112233", "#445566", "#ddeeff"], 5, 96, 64))


def test_numbers_outside_the_designed_span_are_clamped_not_fatal() -> None:
    wide = replace(BASE, complexity=40, energy=-5, symmetry=300, grain=1000, hue_shift=720)
    clamped = replace(BASE, complexity=10, energy=0, symmetry=100, grain=100, hue_shift=180)
    assert np.array_equal(render(wide, size=64), render(clamped, size=64))


@pytest.mark.parametrize(
    ("palette", "seed", "width", "height"),
    [
        (["#ffffff"], 1, 64, 64),
        (["#fff", "#000000"], 1, 64, 64),
        (["#zzzzzz", "#000000"], 1, 64, 64),
        (["#ffffff", "#000000"], -1, 64, 64),
        (["#ffffff", "#000000"], 1, 8, 64),
        (["#ffffff", "#000000"], 1, 64, 10_000),
    ],
)
def test_malformed_requests_raise_a_render_error(palette: list[str], seed: int, width: int, height: int) -> None:
    with pytest.raises(InvalidRenderRequest) as caught:
        synthesize(BASE, palette, seed, width, height)
    assert caught.value.code == "invalid_render_request"


def test_wrongly_typed_params_raise_a_render_error() -> None:
    with pytest.raises(InvalidRenderRequest):
        synthesize(replace(BASE, energy=1.5), DNA.palettes["dawn"], 1, 64, 64)  # type: ignore[arg-type]


def _phash64(rgb: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hash (as imagehash.phash): 32x32 luma, low 8x8 DCT, above median."""
    n = 32
    k = np.arange(n)
    dct = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = luma.shape
    small = luma.reshape(n, h // n, n, w // n).mean(axis=(1, 3))
    low = (dct @ small @ dct.T)[:8, :8].ravel()
    return low > np.median(low)


def _draw_params(count: int, seed: int) -> list[StyleParams]:
    rng = np.random.Generator(np.random.PCG64(seed))
    drawn = []
    for _ in range(count):
        values: dict[str, object] = {
            name: DNA.choices(name)[int(rng.integers(len(DNA.choices(name))))] for name in CHOICE_FIELDS
        }
        values.update({name: int(rng.integers(r.low, r.high + 1)) for name, r in DNA.ranges.items()})
        drawn.append(StyleParams(**values))  # type: ignore[arg-type]
    return drawn


def test_two_hundred_param_sets_give_perceptually_distinct_images() -> None:
    params = _draw_params(200, seed=2024)
    frames = [synthesize(p, DNA.palettes[p.palette], 7, 128, 128) for p in params]
    hashes = np.array([_phash64(frame) for frame in frames])
    distance = (hashes[:, None, :] != hashes[None, :, :]).sum(axis=2)
    pairs = distance[np.triu_indices(len(params), 1)]
    assert (pairs > PHASH_NEAR_DUPLICATE).mean() >= 0.95
    # The same sweep doubles as a check that real art passes the default gate.
    rejected = [(p, check_quality(f).reasons) for p, f in zip(params, frames, strict=True) if not check_quality(f).ok]
    assert not rejected


def test_the_gated_render_accepts_real_art_first_time_and_reports_an_impossible_gate() -> None:
    result = render_procedural_gated(BASE, DNA.palettes["dawn"], 3, 128, 128)
    assert (result.attempts, result.seed) == (1, 3)
    impossible = QualityThresholds(min_std=0.99)
    with pytest.raises(QualityGateFailed) as caught:
        render_procedural_gated(BASE, DNA.palettes["dawn"], 3, 64, 64, thresholds=impossible, max_attempts=2)
    assert caught.value.attempts == 2
    assert caught.value.seeds == (3, derive_seed(3, 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    palette=st.sampled_from(DNA.choices("palette")),
    medium=st.sampled_from(DNA.choices("medium")),
    motif=st.sampled_from(DNA.choices("motif")),
    mood=st.sampled_from(DNA.choices("mood")),
    numbers=st.fixed_dictionaries({name: st.integers(bounds.low, bounds.high) for name, bounds in DNA.ranges.items()}),
    seed=st.integers(0, 2**256 - 1),
    size=st.sampled_from([(64, 64), (64, 64), (48, 80), (81, 33), (16, 16)]),
)
def test_any_in_bounds_params_render(
    palette: str, medium: str, motif: str, mood: str, numbers: dict[str, int], seed: int, size: tuple[int, int]
) -> None:
    params = StyleParams(palette=palette, medium=medium, motif=motif, mood=mood, **numbers)
    DNA.validate(params)
    width, height = size
    frame = synthesize(params, DNA.palettes[palette], seed, width, height)
    assert frame.dtype == np.uint8
    assert frame.shape == (height, width, 3)
    assert frame.flags.c_contiguous
