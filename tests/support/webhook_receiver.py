"""A local webhook receiver for tests: records every request, answers from a script of statuses, checks signatures."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Protocol, Self

from devstack.anvil import free_port
from webhooks.signing import sign


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.time)


class SignedRequest(Protocol):
    """A recorded request: header names lower-cased, the body exactly as received."""

    headers: dict[str, str]
    body: bytes


def assert_signed(request: SignedRequest, secret: str) -> None:
    """The request carries the service's one outbound signature (webhooks.signing): fresh, over its exact body."""
    timestamp = request.headers["x-personamint-timestamp"]
    assert request.headers["x-personamint-signature"] == f"v1={sign(secret, timestamp, request.body)}"
    assert abs(time.time() - int(timestamp)) < 60


class WebhookReceiver:
    """Answers each POST with the next status of `script` (then 200 forever); `hang_s` delays answers."""

    def __init__(self, script: list[int] | None = None, *, hang_s: float = 0.0) -> None:
        self.script = list(script or [])
        self.hang_s = hang_s
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                if receiver.hang_s:
                    time.sleep(receiver.hang_s)
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} webhook requests, got {len(self.received)}")

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()


def register_endpoint(redis_url: str, tenant: str, url: str) -> str:
    """Set `tenant`'s status-webhook endpoint (loopback allowed: the receivers are on 127.0.0.1); its secret."""
    from redis.asyncio import Redis

    from jobs.outbox import set_endpoint

    async def run() -> str:
        redis = Redis.from_url(redis_url)
        try:
            return await set_endpoint(redis, tenant, url, allow_loopback=True)
        finally:
            await redis.aclose()

    return asyncio.run(run())
