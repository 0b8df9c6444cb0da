"""Service errors and the one place every error becomes an RFC 9457 problem document."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError as RedisReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chain.errors import ChainError
from jobs.ratelimit import Decision
from observability.logging import redact, request_id_var
from personalization.errors import PersonalizationError
from render.errors import RenderError

log = logging.getLogger("personamint.api")


PROBLEM_JSON = "application/problem+json"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """A refusal with a stable code, an HTTP status and a human sentence."""

    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def rate_limited(code: str, detail: str, decision: Decision, *, headers: dict[str, str] | None = None) -> ApiError:
    """A 429 for a spent rate limit: `Retry-After` in whole seconds, `retry_after_s` in the body."""
    return ApiError(
        429,
        code,
        detail,
        headers={"Retry-After": decision.retry_after_header, **(headers or {})},
        retry_after_s=round(decision.retry_after_s, 3),
    )


def problem(
    status: int,
    code: str,
    detail: str,
    request: Request[Any, Any, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"https://personamint.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        # The path as sent, less anything credential-shaped a caller put into it.
        body["instance"] = redact(request.url.path[:512])
    if (request_id := request_id_var.get()) is not None:
        body["request_id"] = request_id
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def api_error_handler(request: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    return problem(exc.status, exc.code, exc.detail, request, headers=exc.headers, **exc.extra)


def unavailable_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Redis or the chain is unreachable: a retryable 503, never a 500 (the caller retries with its key)."""
    route = request.scope.get("path_template") or "<unmatched>"
    log.warning("dependency unavailable on %s %s: %s", request.method, route, type(exc).__name__)
    return problem(
        503,
        "service_unavailable",
        "A backing service is unreachable; retry with the same Idempotency-Key.",
        request,
        headers={"Retry-After": "1"},
    )


@dataclass(frozen=True)
class LibraryMapping:
    """How a library error with a given `code` reaches a caller."""

    status: int
    detail: str | None = None  # None: the error's own message (only where it is built from the caller's input)
    retry_after_s: int | None = None


# The libraries' root errors (chain, personalization, render) carry a stable `code`; this table is
# the one place that says what each code means over HTTP. A dependency that is down is a
# retryable 503 with Retry-After; a code not listed is the service's own failure (a logged 500).
LIBRARY_CODES: dict[str, LibraryMapping] = {
    "history_unavailable": LibraryMapping(503, "The wallet's on-chain history could not be read; retry later.", 5),
    "chain_unavailable": LibraryMapping(503, "The chain's JSON-RPC endpoint is unreachable; retry later.", 5),
    "rpc_error": LibraryMapping(503, "The chain's JSON-RPC endpoint failed; retry later.", 5),
    "pinning_unavailable": LibraryMapping(503, "The pinning service is unreachable; retry later.", 5),
    "diffusion_unavailable": LibraryMapping(503, "The renderer is unavailable; retry later.", 5),
    "invalid_context": LibraryMapping(400),
}
LIBRARY_ROOTS = (ChainError, PersonalizationError, RenderError)


def library_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    code = str(getattr(exc, "code", ""))
    mapping = LIBRARY_CODES.get(code)
    if mapping is None:
        return internal_error_handler(request, exc)
    headers = {"Retry-After": str(mapping.retry_after_s)} if mapping.retry_after_s is not None else None
    if mapping.status >= 500:
        route = request.scope.get("path_template") or "<unmatched>"
        log.warning("dependency unavailable on %s %s: %s (%s)", request.method, route, type(exc).__name__, code)
    return problem(mapping.status, code, mapping.detail or str(exc)[:500], request, headers=headers)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        return internal_error_handler(request, exc)
    if isinstance(exc, ValidationException):
        detail = str(exc.detail)
        code = "invalid_json" if _is_decode_error(detail) else "invalid_request"
        errors = exc.extra if isinstance(exc.extra, list) else None
        extra: dict[str, Any] = {"errors": errors} if errors else {}
        return problem(400, code, detail, request, **extra)
    code = _STATUS_CODES.get(status, "client_error")
    # Litestar raises a body it could not decode (bad JSON, truncated, nested past the decoder's
    # depth) as a 400 from its SerializationException.
    if status == 400 and (isinstance(exc.__cause__, SerializationException) or _is_decode_error(str(exc.detail))):
        code = "invalid_json"
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() in ("allow", "retry-after")}
    return problem(status, code, str(exc.detail), request, headers=headers)


def _is_decode_error(detail: str) -> bool:
    lowered = detail.lower()
    return "malformed" in lowered or "decode" in lowered or ("json" in lowered and "invalid" in lowered)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # The route template, never the raw path: a caller may have put anything in the URL.
    route = request.scope.get("path_template") or "<unmatched>"
    log.exception("unhandled error on %s %s", request.method, route, exc_info=exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "The service failed; it has been logged.", request)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: api_error_handler,
    HTTPException: http_exception_handler,
    RedisConnectionError: unavailable_handler,
    RedisTimeoutError: unavailable_handler,
    # A write that reached a primary just demoted by a failover (one-node URLs; Sentinel ones reconnect).
    RedisReadOnlyError: unavailable_handler,
    **dict.fromkeys(LIBRARY_ROOTS, library_error_handler),
    Exception: internal_error_handler,
}
