"""GET /v1/mints/{id} is answered in front of the router (api.status_reads.StatusReads): same answers, one charge.

The app runs in this process on the stack's Redis, so each request can go both ways: through the
whole ASGI stack (fast path first) and straight into Litestar's router, which is what answered
every read before the fast path existed. A counting layer in front of the router shows which
way each request went, so a fast path that silently stopped matching would fail here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account import Account

from api.app import create_app
from api.status_reads import StatusReads
from config.settings import Settings
from tests.support.polling import wait_for_job
from tests.support.stack import Stack

Response = tuple[int, dict[bytes, bytes], Any, bytes]  # status, headers, JSON less request_id, raw body


async def call(litestar: Any, handler: Any, path: str, authorization: str | None) -> Response:
    headers = [(b"host", b"test")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
        "litestar_app": litestar,  # what Litestar.__call__ adds before its ASGI handler runs
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await handler(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    document = json.loads(body)
    if isinstance(document, dict):
        document.pop("request_id", None)  # set by the request context, which only one way has
    return start["status"], dict(start["headers"]), document, body


class Counting:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def in_process(stack: Stack, monkeypatch: pytest.MonkeyPatch, **env: str) -> AsyncIterator[Any]:
    """The API app on the stack's Redis and chain, in this process (lifespan entered and left in one task)."""
    for name, value in {**stack.env, "PERSONAMINT_WEBHOOK_DELIVERY": "0", **env}.items():
        monkeypatch.setenv(name, value)
    litestar = create_app(Settings())
    async with litestar.lifespan():
        yield litestar


def both_ways(litestar: Any) -> tuple[Any, StatusReads, Counting]:
    """(the whole stack, the fast-path layer, a counter in front of the router)."""
    fast = litestar.asgi_handler.app
    while not isinstance(fast, StatusReads):  # the layers in front of it (header limits)
        fast = fast.app
    router = Counting(fast.app)
    fast.app = router
    return litestar.asgi_handler, fast, router


async def test_fast_path_answers_what_the_router_answers(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    with stack.client() as client:
        accepted = client.post("/v1/mints", json={"recipient": Account.create().address}).json()
        done = await asyncio.to_thread(wait_for_job, client, accepted["id"])
    assert done["status"] == "confirmed"
    async with in_process(stack, monkeypatch) as app:
        await _compare_confirmed(app, stack, accepted["id"], done)


async def _compare_confirmed(app: Any, stack: Stack, job_id: str, done: dict[str, Any]) -> None:
    whole, _, router = both_ways(app)
    bearer = f"Bearer {stack.api_key}"
    path = f"/v1/mints/{job_id}"

    fast_status, fast_headers, fast_body, fast_raw = await call(app, whole, path, bearer)
    assert router.calls == 0  # answered in front of the router
    slow_status, slow_headers, slow_body, slow_raw = await call(app, router.app, path, bearer)
    assert router.calls == 0
    assert (fast_status, fast_body) == (slow_status, slow_body) == (200, fast_body)
    assert fast_headers[b"content-type"] == slow_headers[b"content-type"] == b"application/json"
    assert fast_raw == slow_raw  # byte for byte
    assert int(fast_headers[b"content-length"]) == len(fast_raw)
    # The request context still runs: request id and the caller's rate-limit headers.
    assert b"x-request-id" in fast_headers
    assert b"ratelimit-remaining" in fast_headers
    # And the view is the job's: every stage's output is there.
    assert (fast_body["token_id"], fast_body["tx_hash"]) == (done["token_id"], done["tx_hash"])
    assert fast_body["image_url"].endswith(done["image_uri"].removeprefix("ipfs://"))


async def test_refusals_go_to_the_router_and_match(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    with stack.client() as client:
        job_id = client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
    mint_only = await asyncio.to_thread(stack.new_key, "tenant-mint-only", scopes=("mint",))
    elsewhere = await asyncio.to_thread(stack.new_key, "tenant-elsewhere")
    async with in_process(stack, monkeypatch) as app:
        await _compare_refusals(app, stack, job_id, mint_only, elsewhere)


async def _compare_refusals(app: Any, stack: Stack, job_id: str, mint_only: str, elsewhere: str) -> None:
    whole, _, router = both_ways(app)
    cases = [
        (f"/v1/mints/{job_id}", None, 401, "missing_api_key"),
        (f"/v1/mints/{job_id}", "Bearer pm_not-a-key", 401, "invalid_api_key"),
        (f"/v1/mints/{job_id}", "Basic abc", 401, "invalid_api_key"),
        (f"/v1/mints/{job_id}", f"Bearer {mint_only}", 403, "insufficient_scope"),
        (f"/v1/mints/{job_id}", f"Bearer {elsewhere}", 404, "job_not_found"),
        ("/v1/mints/nosuchjob", f"Bearer {stack.api_key}", 404, "job_not_found"),
    ]  # fmt: skip
    for path, authorization, status, code in cases:
        before = router.calls
        got = await call(app, whole, path, authorization)
        assert router.calls == before + 1, (path, code)  # the refusal was the router's to write
        expected = await call(app, router.app, path, authorization)
        assert got[0] == expected[0] == status, (code, got, expected)
        assert got[1][b"content-type"] == b"application/problem+json"
        assert got[2] == expected[2]
        assert got[2]["code"] == code
    # A path the fast path does not own goes to the router untouched.
    before = router.calls
    assert (await call(app, whole, "/v1/mints/" + "a" * 65, f"Bearer {stack.api_key}"))[0] == 404
    assert router.calls == before + 1


async def test_redis_down_is_a_503_problem(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack.anvil import free_port

    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    async with in_process(stack, monkeypatch, PERSONAMINT_REDIS_URL=nowhere) as litestar:
        transport = httpx.ASGITransport(app=litestar)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/v1/mints/abc", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "service_unavailable"
    assert stack.api_key not in response.text


async def test_startup_heap_is_frozen_while_the_app_runs(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full collections skip what start-up loaded (benchmarks.gc_pause: ~80 ms pauses → ~0), and get it back after."""
    before = gc.get_freeze_count()
    async with in_process(stack, monkeypatch):
        assert gc.get_freeze_count() > before + 10_000
    assert gc.get_freeze_count() == 0


async def test_ended_answers_are_kept_and_still_checked(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A confirmed job's answer is kept; later reads fetch only owner and status, and still refuse what they must."""
    from redis.asyncio import Redis

    import api.status_reads

    with stack.client() as client:
        accepted = client.post("/v1/mints", json={"recipient": Account.create().address}).json()
        done = await asyncio.to_thread(wait_for_job, client, accepted["id"])
    assert done["status"] == "confirmed"
    elsewhere = await asyncio.to_thread(stack.new_key, "tenant-elsewhere-kept")
    views = 0
    shape = api.status_reads.status_view

    def counting(*args: Any) -> Any:
        nonlocal views
        views += 1
        return shape(*args)

    monkeypatch.setattr(api.status_reads, "status_view", counting)
    path, bearer = f"/v1/mints/{accepted['id']}", f"Bearer {stack.api_key}"
    async with in_process(stack, monkeypatch) as app:
        whole, fast, router = both_ways(app)
        first = await call(app, whole, path, bearer)
        assert (first[0], views, router.calls) == (200, 1, 0)
        assert accepted["id"] in fast.ended
        again = await call(app, whole, path, bearer)
        assert again[3] == first[3]  # byte for byte,
        assert (views, router.calls) == (1, 0)  # from what was kept, not shaped again
        assert b"ratelimit-remaining" in again[1]  # and still authenticated and charged

        # Another tenant gets the same 404 as ever, from the router, and the kept answer is dropped.
        other = await call(app, whole, path, f"Bearer {elsewhere}")
        assert (other[0], other[2]["code"], router.calls) == (404, "job_not_found", 1)
        assert accepted["id"] not in fast.ended
        assert (await call(app, whole, path, bearer))[3] == first[3]
        assert accepted["id"] in fast.ended

        # A record that is gone is gone, whatever was kept.
        redis = Redis.from_url(stack.redis.url)
        try:
            await redis.delete(f"pm:job:{accepted['id']}")
        finally:
            await redis.aclose()
        gone = await call(app, whole, path, bearer)
        assert (gone[0], gone[2]["code"]) == (404, "job_not_found")
        assert accepted["id"] not in fast.ended
