"""Prometheus metrics: the API's per-request middleware (request id, rate-limit headers, timing,
access log) and what pipeline workers and the minter serve on their own port.

Paths are labelled by route template (`/v1/mints/{job_id:str}`), never by the raw path, so the
label set stays bounded whatever callers send."""

from __future__ import annotations

import logging
import os
import re
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from observability.logging import request_id_var

log = logging.getLogger("personamint.http")


_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")  # fullmatch: `$` matches before a trailing newline


SLOW_REQUEST_S = 1.0


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pm_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "pm_http_request_duration_seconds",
            "HTTP request duration (streams: until the stream ends)",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.mints = Counter("pm_mints_accepted_total", "POST /v1/mints outcomes", ["outcome"], registry=r)
        self.rate_limited = Counter("pm_rate_limited_total", "Requests refused by a limit", ["limit"], registry=r)
        self.webhooks_in = Counter(
            "pm_webhooks_inbound_total", "Inbound webhook outcomes", ["source", "outcome"], registry=r
        )
        self.sse_streams = Gauge("pm_sse_streams", "Open server-sent event streams", registry=r)
        self.previews = Counter("pm_previews_total", "Previews served", ["cached"], registry=r)
        self.queue_depth = Gauge("pm_queue_depth", "Jobs waiting per queue", ["queue"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestContext:
    """Outermost ASGI layer: request id in and out (`X-Request-Id`), rate-limit headers, metrics, error log.

    It wraps the whole app rather than each route (Litestar middleware): unrouted 404/405s are
    counted too, and routes do not each get an extra exception-handling layer.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, *, log_requests: bool, bypass: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        self.bypass = bypass
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
            if len(self._series) < 10_000:  # routes are templates, so this stays small
                self._series[(method, route, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.bypass:  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        incoming = header_value(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                extra: dict[str, str] = scope.get("pm_headers") or {}  # type: ignore[assignment]
                if extra and status != 429:
                    headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("path_template") or "<unmatched>"
            method = metric_method(str(scope.get("method", "")))
            self._observe(method, route, status, seconds)
            if status >= 500 or self.log_requests or (seconds > SLOW_REQUEST_S and "events" not in route):
                log.log(
                    logging.WARNING if status >= 500 else logging.INFO,
                    "%s %s %d %.1f ms",
                    method,
                    route,
                    status,
                    seconds * 1000,
                    extra={"status": status, "route": route, "duration_ms": round(seconds * 1000, 2)},
                )
            request_id_var.reset(token)


# The methods a label may name (RFC 9110 and PATCH); any other a caller sends counts as OTHER, so
# the label set stays bounded whatever callers send (routes are templates for the same reason).
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def metric_method(method: str) -> str:
    return method if method in STANDARD_METHODS else "OTHER"


def header_value(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


def content_type() -> str:
    from prometheus_client import CONTENT_TYPE_LATEST

    return str(CONTENT_TYPE_LATEST)
