"""The quality gate: broken frames are rejected with a reason, real art passes, re-seeding is bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from personalization.style import StyleParams, load_style_dna
from render.errors import InvalidQualityThresholds, InvalidRenderRequest, QualityGateFailed
from render.procedural import synthesize
from render.quality import QualityThresholds, check_quality, derive_seed, render_with_gate

ROOT = Path(__file__).resolve().parents[3]
DNA = load_style_dna(ROOT / "collections" / "default.toml")
ART = StyleParams(
    palette="ledger",
    medium="ink",
    motif="terrain",
    mood="serene",
    complexity=4,
    energy=30,
    symmetry=0,
    grain=20,
    hue_shift=0,
)


@pytest.fixture(scope="module")
def real_frame() -> np.ndarray:
    return synthesize(ART, DNA.palettes["ledger"], 11, 256, 256)


def reasons_of(frame: np.ndarray, **limits: float) -> list[str]:
    report = check_quality(frame, QualityThresholds(**limits) if limits else None)
    assert report.ok is (not report.reasons)
    return report.reasons


def test_a_real_render_passes(real_frame: np.ndarray) -> None:
    report = check_quality(real_frame)
    assert report.ok, report.reasons
    assert report.metrics["luma_std"] > QualityThresholds().min_std


def test_a_real_render_passes_as_a_float_frame(real_frame: np.ndarray) -> None:
    assert check_quality(real_frame.astype(np.float32) / 255.0).ok


def test_all_black_is_rejected() -> None:
    reasons = reasons_of(np.zeros((128, 128, 3), dtype=np.uint8))
    assert any("mostly black" in r for r in reasons)
    assert any("near-uniform" in r for r in reasons)


def test_all_white_is_rejected() -> None:
    assert any("mostly white" in r for r in reasons_of(np.full((64, 64, 3), 255, dtype=np.uint8)))


def test_uniform_grey_is_rejected() -> None:
    reasons = reasons_of(np.full((128, 128, 3), 128, dtype=np.uint8))
    assert any("near-uniform" in r for r in reasons)
    assert any("too little structure" in r for r in reasons)
    assert not any("black" in r for r in reasons)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_frames_are_rejected(bad: float) -> None:
    frame = np.full((64, 64, 3), bad, dtype=np.float32)
    assert any("non-finite" in r for r in reasons_of(frame))


def test_a_few_nan_pixels_in_a_good_frame_are_rejected(real_frame: np.ndarray) -> None:
    frame = real_frame.astype(np.float32) / 255.0
    frame[10, 10, 1] = np.nan
    report = check_quality(frame)
    assert not report.ok
    assert report.metrics["nan_fraction"] > 0
    assert check_quality(frame, QualityThresholds(max_nan_fraction=0.01)).ok


def test_faint_noise_without_structure_is_rejected() -> None:
    rng = np.random.Generator(np.random.PCG64(0))
    frame = 0.5 + (rng.random((256, 256, 3)) - 0.5) * 0.02
    reasons = reasons_of(frame)
    assert any("near-uniform" in r for r in reasons)
    assert any("too little structure" in r for r in reasons)


def test_a_smooth_gradient_has_contrast_but_no_structure() -> None:
    ramp = np.linspace(0.1, 0.9, 256)
    frame = np.repeat(np.repeat(ramp[None, :, None], 256, axis=0), 3, axis=2)
    reasons = reasons_of(frame)
    assert not any("near-uniform" in r for r in reasons)
    assert any("too little structure" in r for r in reasons)


def test_grayscale_and_rgba_frames_are_accepted(real_frame: np.ndarray) -> None:
    grey = real_frame.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([real_frame, np.full(real_frame.shape[:2], 255, dtype=np.uint8)])
    assert check_quality(grey).ok
    assert check_quality(rgba).ok


def test_frames_of_the_wrong_shape_raise() -> None:
    with pytest.raises(InvalidRenderRequest):
        check_quality(np.zeros((4, 4, 5)))
    with pytest.raises(InvalidRenderRequest):
        check_quality(np.zeros(16))


def test_thresholds_from_a_dna_quality_table() -> None:
    limits = QualityThresholds.from_mapping({"min_std": 0.1, "pool": 2, "max_black_fraction": 1})
    assert (limits.min_std, limits.pool, limits.max_black_fraction) == (0.1, 2, 1.0)
    assert limits.min_edge_density == QualityThresholds().min_edge_density
    assert QualityThresholds.from_mapping({}) == QualityThresholds()


@pytest.mark.parametrize(
    "table",
    [{"min_stdev": 0.1}, {"min_std": "high"}, {"min_std": True}, {"min_std": -0.1}, {"pool": 0}, {"pool": 2.5}],
)
def test_bad_quality_tables_raise(table: dict[str, object]) -> None:
    with pytest.raises(InvalidQualityThresholds) as caught:
        QualityThresholds.from_mapping(table)
    assert caught.value.code == "invalid_quality_thresholds"


def test_derived_seeds_are_stable_distinct_and_start_at_the_seed() -> None:
    assert derive_seed(5, 0) == 5
    assert derive_seed(5, 1) == derive_seed(5, 1)
    assert len({derive_seed(5, k) for k in range(10)} | {derive_seed(6, 1)}) == 11


def test_render_with_gate_reseeds_until_a_frame_passes(real_frame: np.ndarray) -> None:
    calls: list[int] = []

    def flaky(seed: int) -> tuple[np.ndarray, str]:
        calls.append(seed)
        frame = np.zeros((64, 64, 3), dtype=np.uint8) if len(calls) <= 2 else real_frame
        return frame, f"made with {seed}"

    gated = render_with_gate(flaky, 77, max_attempts=5)
    assert gated.attempts == 3
    assert calls == [77, derive_seed(77, 1), derive_seed(77, 2)]
    assert gated.seed == calls[-1]
    assert gated.value[1] == f"made with {calls[-1]}"
    assert [r.ok for r in gated.reports] == [False, False, True]


def test_render_with_gate_gives_up_after_max_attempts() -> None:
    calls: list[int] = []

    def broken(seed: int) -> np.ndarray:
        calls.append(seed)
        return np.full((32, 32, 3), np.nan, dtype=np.float32)

    with pytest.raises(QualityGateFailed) as caught:
        render_with_gate(broken, 1, max_attempts=3)
    assert len(calls) == 3
    assert caught.value.attempts == 3
    assert caught.value.seeds == tuple(calls)
    assert caught.value.code == "quality_gate_failed"
    assert any("non-finite" in r for r in caught.value.reasons)


def test_render_with_gate_takes_a_frame_extractor(real_frame: np.ndarray) -> None:
    gated = render_with_gate(lambda seed: {"image": real_frame}, 1, frame_of=lambda out: out["image"])
    assert gated.attempts == 1
    with pytest.raises(InvalidRenderRequest):
        render_with_gate(lambda seed: {"image": real_frame}, 1)
    with pytest.raises(InvalidRenderRequest):
        render_with_gate(lambda seed: real_frame, 1, max_attempts=0)
