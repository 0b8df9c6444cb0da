"""Request headers of a bounded size and count: an ASGI guard in front of the router.

The HTTP parser uvicorn picks (httptools) takes a request head of any size and any number of
headers; h11's own limit, where h11 is the parser, applies to the whole head and answers a bare
400. This layer answers 431 (RFC 6585) with a problem document before any route, hook or
credential check sees the request, so one rule holds whichever parser runs. A reverse proxy in
front should refuse earlier still (docs/security.md, "Reverse proxy").
"""

from __future__ import annotations

import json
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from observability.logging import request_id_var


class HeaderLimits:
    """431 when a request carries more than `max_count` headers or more than `max_bytes` of names and values."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_count: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            headers = cast(list[tuple[bytes, bytes]], scope.get("headers") or [])
            if len(headers) > self.max_count:
                await _refuse(send, "too_many_request_headers", f"a request may carry at most {self.max_count} headers")
                return
            if sum(len(name) + len(value) for name, value in headers) > self.max_bytes:
                await _refuse(
                    send,
                    "request_headers_too_large",
                    f"a request's headers may total at most {self.max_bytes} bytes",
                )
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, code: str, detail: str) -> None:
    body: dict[str, Any] = {
        "type": f"https://personamint.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": 431,
        "detail": detail,
        "code": code,
    }
    if (request_id := request_id_var.get()) is not None:
        body["request_id"] = request_id
    encoded = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(encoded)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": encoded, "more_body": False})
