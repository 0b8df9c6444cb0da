"""The render stage's exceptions, each with a stable machine-readable code."""

from __future__ import annotations


class RenderError(Exception):
    """Root of every error raised by render/."""

    code = "render_error"


class InvalidRenderRequest(RenderError):
    """The arguments to a renderer are malformed (size, seed, palette, params)."""

    code = "invalid_render_request"


class InvalidQualityThresholds(RenderError):
    """A collection's [quality] table names an unknown key or a bad value."""

    code = "invalid_quality_thresholds"


class QualityGateFailed(RenderError):
    """Every attempt, re-seeded, produced a frame the quality gate rejected."""

    code = "quality_gate_failed"

    def __init__(self, message: str, *, attempts: int, seeds: tuple[int, ...], reasons: tuple[str, ...]) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.seeds = seeds
        self.reasons = reasons
