"""A failed job's error record: the library's stable code, never a secret."""

from __future__ import annotations

from chain.errors import ChainError
from personalization.errors import PersonalizationError
from render.errors import RenderError


def job_error(exc: BaseException) -> dict[str, str]:
    """A failed job's error: the library's stable code and a message without secrets."""
    if isinstance(exc, ChainError | PersonalizationError | RenderError):
        return {"code": exc.code, "message": str(exc)[:500]}
    return {"code": "internal_error", "message": type(exc).__name__}
