"""Tenancy limits on the live service: what one caller may make the service spend or hold.

Session mints per wallet, daily mint budgets per tenant, in-flight previews per tenant, uncached
history scans per tenant, sessions seeing only their own wallet, and previews on their own queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from eth_account import Account
from redis.asyncio import Redis

from jobs.keys import previews_in_flight_key
from tests.support.siwe import sign_in
from tests.support.stack import Stack


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _redis(stack: Stack, command: str, *args: Any) -> Any:
    async def run() -> Any:
        client = Redis.from_url(stack.redis.url)
        try:
            return await getattr(client, command)(*args)
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def tight_api(stack: Stack) -> str:
    """Another API process on the stack with small tenancy limits (stopped with the stack); its base URL."""
    return stack.spawn_api(
        "api-tenancy",
        {
            "PERSONAMINT_TENANT_DAILY_MINT_BUDGETS": json.dumps({"budget-a": 2}),
            "PERSONAMINT_PROFILE_SCANS_PER_MIN": "1",
            "PERSONAMINT_PROFILE_SCAN_BURST": "2",
            "PERSONAMINT_TENANT_PREVIEWS_IN_FLIGHT": "2",
        },
    )


def _client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60, trust_env=False)


# ---- item 11: session mints, daily budgets ----


def test_a_session_mints_once_and_its_second_mint_is_refused(stack: Stack) -> None:
    wallet = Account.create()
    with _client(stack.base_url, sign_in(stack.base_url, stack.chain_id, wallet)) as client:
        first = client.post("/v1/mints", json={"recipient": wallet.address}, headers={"Idempotency-Key": "s-1"})
        assert first.status_code == 202, first.text
        second = client.post("/v1/mints", json={"recipient": wallet.address}, headers={"Idempotency-Key": "s-2"})
        assert assert_problem(second, 403, "session_mint_limit")["limit"] == 1
        # A replay of the first is still answered with its job: limits apply to new jobs only.
        replay = client.post("/v1/mints", json={"recipient": wallet.address}, headers={"Idempotency-Key": "s-1"})
        assert replay.status_code == 202, replay.text
        assert replay.json()["id"] == first.json()["id"]
    # Signing in again is the same wallet: no fresh allowance.
    with _client(stack.base_url, sign_in(stack.base_url, stack.chain_id, wallet)) as client:
        assert_problem(client.post("/v1/mints", json={"recipient": wallet.address}), 403, "session_mint_limit")
    # An API-key tenant is not held to the session allowance.
    with stack.client() as client:
        for _ in range(2):
            assert client.post("/v1/mints", json={"recipient": wallet.address}).status_code == 202


def test_a_tenant_over_its_daily_budget_is_refused_while_another_is_not(stack: Stack, tight_api: str) -> None:
    spender, other = _client(tight_api, stack.new_key("budget-a")), _client(tight_api, stack.new_key("budget-b"))
    with spender, other:
        for _ in range(2):
            accepted = spender.post("/v1/mints", json={"recipient": Account.create().address})
            assert accepted.status_code == 202, accepted.text
        refused = spender.post("/v1/mints", json={"recipient": Account.create().address})
        body = assert_problem(refused, 429, "tenant_daily_budget")
        assert body["budget"] == 2
        assert 1 <= int(refused.headers["Retry-After"]) <= 86_400
        for _ in range(3):  # budget-b has the (unlimited) default
            assert other.post("/v1/mints", json={"recipient": Account.create().address}).status_code == 202


# ---- item 12: previews and profiles ----


def test_a_session_previews_and_profiles_only_its_own_wallet(stack: Stack) -> None:
    wallet = Account.create()
    someone = Account.create().address
    with _client(stack.base_url, sign_in(stack.base_url, stack.chain_id, wallet)) as client:
        assert_problem(client.post("/v1/previews", json={"recipient": someone}), 403, "not_your_wallet")
        assert_problem(client.get(f"/v1/profiles/{someone}"), 403, "not_your_wallet")
        assert client.get(f"/v1/profiles/{wallet.address.lower()}").status_code == 200
        own = client.post("/v1/previews", json={"recipient": wallet.address})
        assert own.status_code == 200, own.text


def test_uncached_history_scans_are_budgeted_per_tenant(stack: Stack, tight_api: str) -> None:
    first, second, third = (Account.create().address for _ in range(3))
    with _client(tight_api, stack.new_key("scan-a")) as scanner, _client(tight_api, stack.new_key("scan-b")) as other:
        assert scanner.get(f"/v1/profiles/{first}").status_code == 200
        assert scanner.get(f"/v1/profiles/{second}").status_code == 200
        refused = scanner.get(f"/v1/profiles/{third}")
        assert_problem(refused, 429, "history_scan_rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
        # A cached profile costs nothing; neither does another tenant's budget suffer.
        cached = scanner.get(f"/v1/profiles/{first}")
        assert cached.status_code == 200
        assert cached.json()["cached"] is True
        assert_problem(scanner.post("/v1/previews", json={"recipient": third}), 429, "history_scan_rate_limited")
        assert other.get(f"/v1/profiles/{third}").status_code == 200


def test_previews_in_flight_are_bounded_per_tenant(stack: Stack, tight_api: str) -> None:
    key = previews_in_flight_key("flight-a")
    # Two previews of flight-a in flight (held as the service holds them), one long lapsed.
    now_ms = time.time() * 1000
    _redis(stack, "zadd", key, {"held-1": now_ms + 60_000, "held-2": now_ms + 60_000, "lapsed": now_ms - 1})
    with _client(tight_api, stack.new_key("flight-a")) as busy, _client(tight_api, stack.new_key("flight-b")) as other:
        refused = busy.post("/v1/previews", json={"recipient": Account.create().address})
        assert assert_problem(refused, 429, "too_many_previews")["limit"] == 2
        assert other.post("/v1/previews", json={"recipient": Account.create().address}).status_code == 200
        _redis(stack, "zrem", key, "held-1")
        assert busy.post("/v1/previews", json={"recipient": Account.create().address}).status_code == 200
    # The finished preview gave its slot back; the lapsed one was dropped.
    assert _redis(stack, "zrange", key, 0, -1) == [b"held-2"]


def test_previews_run_on_their_own_queue(stack: Stack) -> None:
    with stack.client() as client:
        assert client.post("/v1/previews", json={"recipient": Account.create().address}).status_code == 200
    found = _redis(stack, "keys", "saq:job:*")
    names = {raw.decode().split(":")[2] for raw in found}
    assert "pm-preview" in names, names
    preview_jobs_on_pipeline = [raw for raw in found if raw.startswith(b"saq:job:pm-pipeline:") and b"preview" in raw]
    assert preview_jobs_on_pipeline == []
