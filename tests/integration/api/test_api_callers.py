"""API keys (scopes, collection allow-list, revocation, CLI), rate limits, per-wallet caps, ops endpoints."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from api.keys import KeyStore
from devstack.anvil import free_port
from devstack.local import ServiceProcesses
from tests.support.stack import OPS_TOKEN, WEBHOOK_SOURCE, Stack, wait_healthy

CHECKS = ("redis", "chain", "signer", "queue")

ROOT = Path(__file__).resolve().parents[3]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def test_scopes_and_collection_allow_list(stack: Stack) -> None:
    recipient = Account.create().address
    read_only = stack.new_key("tenant-scopes", scopes=("read",))
    other_collection = stack.new_key("tenant-scopes", collections=("elsewhere",))
    with stack.client(read_only) as client:
        assert_problem(client.post("/v1/mints", json={"recipient": recipient}), 403, "insufficient_scope")
        assert_problem(client.post("/v1/previews", json={"recipient": recipient}), 403, "insufficient_scope")
        assert_problem(client.get("/v1/mints/abc"), 404, "job_not_found")  # read is allowed
    with stack.client(other_collection) as client:
        assert_problem(client.post("/v1/mints", json={"recipient": recipient}), 403, "collection_not_allowed")
    # Jobs are per tenant: another tenant's key cannot see them.
    with stack.client() as client:
        job_id = client.post("/v1/mints", json={"recipient": recipient}).json()["id"]
    with stack.client(stack.new_key("tenant-other")) as client:
        assert_problem(client.get(f"/v1/mints/{job_id}"), 404, "job_not_found")


def test_keys_cli_create_list_revoke(stack: Stack) -> None:
    env = {**os.environ, **stack.env}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "keys", *args], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = cli("create", "tenant-cli", "--scopes", "read,mint", "--collections", "default", "--name", "ci")
    fields = dict(line.split(":", 1) for line in created.splitlines() if ":" in line)
    api_key = fields["api key"].split()[0]
    key_id = fields["key id"].strip()
    assert api_key.startswith("pm_")
    listed = cli("list", "--tenant", "tenant-cli")
    assert key_id in listed
    assert api_key not in listed  # the key itself is never shown again
    # Only the SHA-256 digest is stored.
    stored = asyncio.run(_all_values(stack.redis.url))
    assert not any(api_key.encode() in value for value in stored)

    with stack.client(api_key) as client:
        assert client.get("/v1/mints/abc").status_code == 404
        cli("revoke", key_id)
        assert_problem(client.get("/v1/mints/abc"), 401, "invalid_api_key")
    assert '"revoked_at": null' not in cli("list", "--tenant", "tenant-cli")


async def _all_values(redis_url: str) -> list[bytes]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        values = []
        async for key in client.scan_iter("pm:apikey*"):
            kind = await client.type(key)
            if kind == b"string":
                values.append(await client.get(key))
            elif kind == b"hash":
                values.extend((await client.hgetall(key)).values())
        return values
    finally:
        await client.aclose()


def test_per_key_rate_limit_gives_429_with_retry_after(stack: Stack) -> None:
    limited = stack.new_key("tenant-limited", rate_per_min=60, burst=3)
    with stack.client(limited) as client:
        statuses = [client.get("/v1/mints/nope").status_code for _ in range(5)]
        assert statuses[:3] == [404, 404, 404]
        refused = client.get("/v1/mints/nope")
        body = assert_problem(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        assert body["retry_after_s"] > 0
    # Another key of the same service is unaffected: limits are per key.
    with stack.client() as client:
        ok = client.get("/v1/mints/nope")
        assert ok.status_code == 404
        assert int(ok.headers["ratelimit-remaining"]) >= 0


@pytest.fixture(scope="module")
def limited_api(stack: Stack) -> str:
    """An API process with a strict per-recipient limit and a one-per-wallet cap."""
    return stack.spawn_api(
        "api-limited",
        {
            "PERSONAMINT_RECIPIENT_RATE_PER_MIN": "3",
            "PERSONAMINT_RECIPIENT_BURST": "3",
            "PERSONAMINT_WALLET_CAPS": '{"default": 1}',
        },
    )


def test_per_recipient_limit_is_atomic_across_callers(stack: Stack, limited_api: str) -> None:
    """Two keys, one recipient, concurrent requests: exactly `burst` pass the limit, one the cap."""
    recipient = Account.create().address
    # Two keys of one tenant: the recipient's limit and cap are the tenant's (issue 13), shared by its keys.
    keys = [stack.new_key("tenant-r1"), stack.new_key("tenant-r1")]

    # Five concurrent mints to one wallet, cap 1, burst 3: the rate limit is checked first, so
    # three pass it (one is accepted, two hit the cap) and two are refused by the limit.

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=limited_api, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/mints",
                        json={"recipient": recipient},
                        headers={"Authorization": f"Bearer {keys[i % 2]}"},
                    )
                    for i in range(5)
                )
            )

    responses = asyncio.run(burst())
    codes = sorted(r.json().get("code", str(r.status_code)) for r in responses)
    assert codes == ["202", "mint_cap_reached", "mint_cap_reached", "recipient_rate_limited", "recipient_rate_limited"]
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1


def test_one_tenant_using_up_a_wallet_does_not_lock_another_out(stack: Stack, limited_api: str) -> None:
    """The per-recipient limit and the per-wallet cap are per tenant: a noisy tenant spends only its own."""
    recipient = Account.create().address
    noisy, quiet = stack.new_key("tenant-noisy"), stack.new_key("tenant-quiet")
    with httpx.Client(base_url=limited_api, timeout=30) as client:

        def mint(key: str) -> httpx.Response:
            return client.post("/v1/mints", json={"recipient": recipient}, headers={"Authorization": f"Bearer {key}"})

        codes = [mint(noisy).json().get("code", "202") for _ in range(5)]
        assert codes == [
            "202",
            "mint_cap_reached",
            "mint_cap_reached",
            "recipient_rate_limited",
            "recipient_rate_limited",
        ]
        # The other tenant still has the wallet's whole limit and cap to itself.
        assert mint(quiet).status_code == 202
        assert_problem(mint(quiet), 409, "mint_cap_reached")


def test_wallet_cap_holds_under_concurrency_and_replays_pass(stack: Stack, limited_api: str) -> None:
    recipient = Account.create().address
    key = stack.new_key("tenant-cap")

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=limited_api, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/mints",
                        json={"recipient": recipient},
                        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"cap-{i}"},
                    )
                    for i in range(2)
                )
            )

    first, second = sorted(asyncio.run(race()), key=lambda r: r.status_code)
    assert first.status_code == 202
    assert_problem(second, 409, "mint_cap_reached")
    # Replaying the accepted request is not a second mint: it passes the cap (and the limit).
    with httpx.Client(base_url=limited_api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        replays = [
            client.post("/v1/mints", json={"recipient": recipient}, headers={"Idempotency-Key": k})
            for k in ("cap-0", "cap-1")
        ]
    replayed = [r for r in replays if r.status_code == 202]
    assert len(replayed) == 1
    assert replayed[0].json()["id"] == first.json()["id"]
    assert replayed[0].headers["idempotent-replayed"] == "true"


def test_failed_mint_gives_the_cap_slot_back(stack: Stack, limited_api: str) -> None:
    from redis.asyncio import Redis

    from jobs.model import JobError
    from jobs.store import JobStore

    recipient = Account.create().address
    key = stack.new_key("tenant-cap-fail")
    with httpx.Client(base_url=limited_api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        job_id = client.post("/v1/mints", json={"recipient": recipient}).json()["id"]

        async def fail() -> None:
            redis = Redis.from_url(stack.redis.url)
            try:
                await JobStore(redis).fail(job_id, JobError("render_failed", "test"))
                await JobStore(redis).fail(job_id, JobError("render_failed", "twice"))
            finally:
                await redis.aclose()

        asyncio.run(fail())
        time.sleep(0.1)
        again = client.post("/v1/mints", json={"recipient": recipient})
        assert again.status_code == 202, again.text
        assert_problem(client.post("/v1/mints", json={"recipient": recipient}), 409, "mint_cap_reached")


def test_collection_file_sets_the_wallet_cap_and_settings_override_it(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`deployment.per_wallet_cap` in the collection file is enforced; PERSONAMINT_WALLET_CAPS wins over it."""
    from config.settings import PROJECT_ROOT

    directory = tmp_path_factory.mktemp("capped-collections")
    source = (PROJECT_ROOT / "collections" / "default.toml").read_text()
    assert "per_wallet_cap = 0 " in source
    (directory / "default.toml").write_text(source.replace("per_wallet_cap = 0 ", "per_wallet_cap = 2 ", 1))
    from_file = stack.spawn_api("api-file-cap", {"PERSONAMINT_COLLECTIONS_DIR": str(directory)})
    overridden = stack.spawn_api(
        "api-file-cap-override",
        {"PERSONAMINT_COLLECTIONS_DIR": str(directory), "PERSONAMINT_WALLET_CAPS": '{"default": 3}'},
    )
    recipient = Account.create().address
    key = stack.new_key("tenant-file-cap")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=from_file, headers=headers, timeout=30) as client:
        assert [client.post("/v1/mints", json={"recipient": recipient}).status_code for _ in range(2)] == [202, 202]
        body = assert_problem(client.post("/v1/mints", json={"recipient": recipient}), 409, "mint_cap_reached")
        assert body["cap"] == 2
    with httpx.Client(base_url=overridden, headers=headers, timeout=30) as client:
        assert client.post("/v1/mints", json={"recipient": recipient}).status_code == 202
        assert (
            assert_problem(client.post("/v1/mints", json={"recipient": recipient}), 409, "mint_cap_reached")["cap"] == 3
        )


def test_health_ready_metrics_and_request_id(stack: Stack) -> None:
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    with stack.client(api_key="") as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready", headers=ops)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert set(checks) == {"redis", "chain", "signer", "queue"}
        assert all(check["ok"] for check in checks.values())
        assert checks["chain"]["chain_id"] == stack.chain_id
        assert int(checks["signer"]["wei"]) > 0

        echoed = client.get("/v1/mints/x", headers={"X-Request-Id": "req-12345"})
        assert echoed.headers["x-request-id"] == "req-12345"
        assert echoed.json()["request_id"] == "req-12345"
        generated = client.get("/v1/mints/x").headers["x-request-id"]
        assert len(generated) == 32

        for job_id in ("a1", "b2", "c3"):
            client.get(f"/v1/mints/{job_id}")
        metrics = client.get("/metrics", headers=ops).text
        # Path-grouped: one series for the route template, not one per id.
        assert 'route="/v1/mints/{job_id}"' in metrics
        assert "/v1/mints/a1" not in metrics
        assert "pm_http_request_duration_seconds_bucket" in metrics
        schema = client.get("/schema/openapi.json").json()
        assert "/_bench/bare" not in schema["paths"]
        assert "/metrics" not in schema["paths"]


def test_ready_and_metrics_reveal_nothing_without_the_ops_credential(stack: Stack) -> None:
    signer = Account.from_key(stack.env["PERSONAMINT_SIGNER_KEY"]).address
    for api_key in ("", stack.api_key, OPS_TOKEN + "x"):  # anonymous, a tenant's key, a wrong token
        with stack.client(api_key=api_key) as client:
            ready = client.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ready", "checks": {n: {"ok": True} for n in CHECKS}}
            metrics = client.get("/metrics")
            assert_problem(metrics, 401, "ops_credential_required")
            assert metrics.headers["www-authenticate"].startswith("Bearer")
            for text in (ready.text, metrics.text):
                assert signer.lower() not in text.lower()
                assert WEBHOOK_SOURCE not in text
                assert "pm_queue_depth" not in text
                assert "wei" not in text
    with stack.client(api_key=OPS_TOKEN) as ops:
        detailed = ops.get("/ready").json()["checks"]
        assert detailed["signer"]["address"] == signer
        assert "pipeline" in detailed["queue"]
        assert ops.get("/metrics").status_code == 200


def test_ready_checks_a_keystore_signers_balance(stack: Stack, tmp_path: Path) -> None:
    # A keystore deployment (as in production): an unfunded hot key, so its balance check must fail.
    account = Account.create()
    keystore = tmp_path / "signer.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="pbkdf2", iterations=2)))
    env = {k: v for k, v in stack.env.items() if k != "PERSONAMINT_SIGNER_KEY"}
    env |= {"PERSONAMINT_SIGNER_KEYSTORE": str(keystore), "PERSONAMINT_SIGNER_KEYSTORE_PASSWORD": "pw"}
    services = ServiceProcesses(env, port=free_port(), log_dir=stack.services.log_dir)
    try:
        services.spawn("api-keystore", "api")
        wait_healthy(services.base_url, services.processes["api-keystore"], stack.services.log_dir / "api-keystore.log")
        with httpx.Client(base_url=services.base_url, timeout=30) as client:
            public = client.get("/ready")
            detailed = client.get("/ready", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    finally:
        services.stop()
    body = assert_problem(public, 503, "not_ready")
    assert body["checks"]["signer"] == {"ok": False}  # type: ignore[index]
    signer = assert_problem(detailed, 503, "not_ready")["checks"]["signer"]  # type: ignore[index]
    assert signer["address"] == account.address
    assert signer["wei"] == "0"


def test_not_ready_when_signer_balance_is_below_the_floor(stack: Stack) -> None:
    base = stack.spawn_api("api-poor", {"PERSONAMINT_MIN_SIGNER_BALANCE_WEI": str(10**30)})
    with httpx.Client(base_url=base, timeout=30) as client:
        response = client.get("/ready")
    body = assert_problem(response, 503, "not_ready")
    assert body["checks"]["signer"]["ok"] is False  # type: ignore[index]
    assert body["checks"]["redis"]["ok"] is True  # type: ignore[index]


def test_keystore_revoke_unknown_and_listing(stack: Stack) -> None:
    from redis.asyncio import Redis

    async def run() -> None:
        redis = Redis.from_url(stack.redis.url)
        try:
            store = KeyStore(redis)
            assert await store.revoke("nope") is None
            record, key = await store.create("tenant-ks", scopes=("preview",))
            assert (await store.lookup(key)) == record
            assert record in await store.list("tenant-ks")
            with pytest.raises(ValueError):
                await store.create("tenant-ks", scopes=("admin",))
        finally:
            await redis.aclose()

    asyncio.run(run())
