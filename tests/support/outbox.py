"""Outbox helpers for tests: a pending delivery as set_status.lua writes one; a listener counting connections."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from types import TracebackType
from typing import Self

from redis.asyncio import Redis

from jobs.keys import DELIVERIES_DUE_KEY, delivery_key, tenant_deliveries_key


async def put_delivery(redis: Redis, tenant: str, *, job_id: str | None = None) -> str:
    """A pending, due status delivery for `tenant` with its payload built (so no job record is needed)."""
    job_id = job_id or f"job{secrets.token_hex(8)}"
    delivery_id = f"{job_id}.confirmed"
    now = time.time()
    payload = json.dumps({"id": f"evt_{job_id}", "type": "mint.confirmed", "data": {"mint": {"id": job_id}}})
    await redis.hset(
        delivery_key(delivery_id),
        mapping={
            "id": delivery_id,
            "tenant": tenant,
            "job_id": job_id,
            "type": "mint.confirmed",
            "event_id": f"evt_{job_id}",
            "state": "pending",
            "attempts": "0",
            "created_at": repr(now),
            "next_at": repr(now),
            "payload": payload,
        },
    )
    await redis.zadd(DELIVERIES_DUE_KEY, {delivery_id: now})
    await redis.zadd(tenant_deliveries_key(tenant), {delivery_id: now})
    return delivery_id


class ConnectionRecorder:
    """A TCP listener on 127.0.0.1 that records every connection made to it (and answers HTTP 200)."""

    def __init__(self) -> None:
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()
