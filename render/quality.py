"""Quality gate for rendered frames: reject broken ones, re-seed, give up after N tries."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

import numpy as np

from render.errors import InvalidQualityThresholds, InvalidRenderRequest, QualityGateFailed

T = TypeVar("T")


@dataclass(frozen=True)
class QualityThresholds:
    """Limits a frame must meet; luma values are in [0, 1]. Defaults suit any style of art.

    A collection can override any of them from its DNA's [quality] table.
    """

    # Luma standard deviation: a flat or single-colour frame is ~0 and faint
    # noise on one (+-1 %) ~0.006; the darkest, calmest real renders (a small
    # dusky oil) sit near 0.03, typical ones at 0.1-0.2.
    min_std: float = 0.02
    # Structure is measured on `pool` x `pool` block means so that per-pixel
    # film grain or sensor-like noise does not count as structure.
    pool: int = 4
    # Fraction of pooled pixels whose gradient |dx| + |dy| exceeds edge_threshold.
    edge_threshold: float = 0.04
    min_edge_density: float = 0.02
    # Mean pooled gradient magnitude: smooth gradients with no edges fail here.
    min_gradient_energy: float = 0.006
    # Fraction of pixels darker than black_level / brighter than white_level.
    black_level: float = 0.03
    max_black_fraction: float = 0.9
    white_level: float = 0.985
    max_white_fraction: float = 0.95
    # Any NaN or infinity means the model diverged: by default none are allowed.
    max_nan_fraction: float = 0.0

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any]) -> QualityThresholds:
        """Defaults with a collection's overrides applied; unknown keys and bad values raise."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in known:
                raise InvalidQualityThresholds(f"unknown quality threshold {key!r}; known: {sorted(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidQualityThresholds(f"quality.{key} must be a finite number, got {value!r}")
            if key == "pool":
                if not isinstance(value, int) or value < 1:
                    raise InvalidQualityThresholds(f"quality.pool must be a positive integer, got {value!r}")
            elif value < 0 or (key != "min_gradient_energy" and value > 1):
                raise InvalidQualityThresholds(f"quality.{key} must lie in [0, 1], got {value!r}")
            values[key] = value if key == "pool" else float(value)
        return cls(**values)


@dataclass(frozen=True)
class QualityReport:
    """The gate's verdict on one frame: ok, why not, and the measurements behind it."""

    ok: bool
    reasons: list[str]
    metrics: dict[str, float]


def check_quality(frame: np.ndarray, thresholds: QualityThresholds | None = None) -> QualityReport:
    """Judge an HxW or HxWxC frame (uint8 0..255, or float 0..1 as a model emits it)."""
    limits = thresholds or QualityThresholds()
    pixels = _as_float(frame)
    finite = np.isfinite(pixels)
    nan_fraction = 1.0 - float(finite.mean())
    if nan_fraction:
        pixels = np.where(finite, pixels, 0.0)
    rgb = np.clip(pixels, 0.0, 1.0)
    if rgb.ndim == 3 and rgb.shape[2] >= 3:
        luma = rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722
    else:
        luma = rgb if rgb.ndim == 2 else rgb[..., 0]
    pooled = _pool(luma, limits.pool)
    gx = np.abs(np.diff(pooled, axis=1))[:-1, :] if pooled.shape[0] > 1 else np.zeros((0, 0))
    gy = np.abs(np.diff(pooled, axis=0))[:, :-1] if pooled.shape[1] > 1 else np.zeros((0, 0))
    grad = gx + gy
    metrics = {
        "nan_fraction": nan_fraction,
        "luma_mean": float(luma.mean()),
        "luma_std": float(luma.std()),
        "black_fraction": float((luma < limits.black_level).mean()),
        "white_fraction": float((luma > limits.white_level).mean()),
        "edge_density": float((grad > limits.edge_threshold).mean()) if grad.size else 0.0,
        "gradient_energy": float(grad.mean()) if grad.size else 0.0,
    }
    reasons = []
    if nan_fraction > limits.max_nan_fraction:
        reasons.append(f"non-finite pixels: {nan_fraction:.1%} are NaN or infinite")
    if metrics["black_fraction"] > limits.max_black_fraction:
        reasons.append(f"mostly black: {metrics['black_fraction']:.1%} > {limits.max_black_fraction:.1%}")
    if metrics["white_fraction"] > limits.max_white_fraction:
        reasons.append(f"mostly white: {metrics['white_fraction']:.1%} > {limits.max_white_fraction:.1%}")
    if metrics["luma_std"] < limits.min_std:
        reasons.append(f"near-uniform: luma std {metrics['luma_std']:.4f} < {limits.min_std}")
    if metrics["edge_density"] < limits.min_edge_density:
        reasons.append(f"too little structure: edge density {metrics['edge_density']:.4f} < {limits.min_edge_density}")
    if metrics["gradient_energy"] < limits.min_gradient_energy:
        reasons.append(
            f"too little structure: gradient energy {metrics['gradient_energy']:.4f} < {limits.min_gradient_energy}"
        )
    return QualityReport(ok=not reasons, reasons=reasons, metrics=metrics)


def derive_seed(seed: int, attempt: int) -> int:
    """The seed for re-render `attempt` (0 is the original): stable, so provenance can replay it."""
    if attempt == 0:
        return seed
    digest = hashlib.sha256(b"persona-mint/reseed/v1:%d:%d" % (seed, attempt)).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class GatedRender(Generic[T]):
    """What render_with_gate returns: the accepted output and how it was reached."""

    value: T
    seed: int  # the seed that produced `value`; record this one in provenance
    attempts: int
    reports: tuple[QualityReport, ...]  # one per attempt, the last one passing


def render_with_gate(
    render_fn: Callable[[int], T],
    seed: int,
    thresholds: QualityThresholds | None = None,
    max_attempts: int = 3,
    *,
    frame_of: Callable[[T], np.ndarray] | None = None,
) -> GatedRender[T]:
    """Call render_fn(seed), then with derived seeds, until a frame passes the gate.

    render_fn may return the frame itself or anything `frame_of` extracts one
    from (by default: an ndarray, or the first item of a tuple), so a diffusion
    renderer can hand back its frame together with its own metadata.
    """
    if max_attempts < 1:
        raise InvalidRenderRequest(f"max_attempts must be at least 1, got {max_attempts}")
    extract = frame_of or _default_frame
    reports: list[QualityReport] = []
    seeds: list[int] = []
    for attempt in range(max_attempts):
        attempt_seed = derive_seed(seed, attempt)
        value = render_fn(attempt_seed)
        report = check_quality(extract(value), thresholds)
        reports.append(report)
        seeds.append(attempt_seed)
        if report.ok:
            return GatedRender(value=value, seed=attempt_seed, attempts=attempt + 1, reports=tuple(reports))
    last = "; ".join(reports[-1].reasons)
    raise QualityGateFailed(
        f"no acceptable frame in {max_attempts} attempts (last: {last})",
        attempts=max_attempts,
        seeds=tuple(seeds),
        reasons=tuple(reason for report in reports for reason in report.reasons),
    )


def _default_frame(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, tuple) and value and isinstance(value[0], np.ndarray):
        return value[0]
    raise InvalidRenderRequest(f"cannot find a frame in {type(value).__name__}; pass frame_of=")


def _as_float(frame: np.ndarray) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)) or 0 in array.shape:
        raise InvalidRenderRequest(f"expected an HxW or HxWx{{1,3,4}} frame, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float64) / float(np.iinfo(array.dtype).max)
    if np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_:
        return array.astype(np.float64)
    raise InvalidRenderRequest(f"unsupported frame dtype {array.dtype}")


def _pool(luma: np.ndarray, size: int) -> np.ndarray:
    h, w = luma.shape
    size = max(1, min(size, h, w))
    hh, ww = h // size * size, w // size * size
    blocks = luma[:hh, :ww].reshape(hh // size, size, ww // size, size)
    pooled: np.ndarray = blocks.mean(axis=(1, 3))
    return pooled
