"""A failed job's error record: the library's stable code, never a secret."""

from __future__ import annotations

from chain.errors import ChainError
from jobs.model import JobError
from personalization.errors import PersonalizationError
from render.errors import RenderError


def job_error(exc: BaseException) -> JobError:
    """A failed job's error: the library's stable code and a message without secrets."""
    if isinstance(exc, ChainError | PersonalizationError | RenderError):
        return JobError(exc.code, str(exc)[:500])
    return JobError("internal_error", type(exc).__name__)
