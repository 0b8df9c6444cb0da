"""Waiting in tests: for a job to reach its end state over HTTP, for a condition to hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_for_job(
    client: httpx.Client,
    job_id: str,
    timeout_s: float = 90,
    until: tuple[str, ...] = ("confirmed", "failed", "expired"),
) -> dict[str, Any]:
    """Poll GET /v1/mints/{id} until one of `until` (an end by default); the answer carries the
    statuses seen as `_seen`."""
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/mints/{job_id}").json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] in until:
            body["_seen"] = seen
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish; statuses seen {seen}")


async def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """Check `predicate` every 20 ms on the event loop until it is true; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
