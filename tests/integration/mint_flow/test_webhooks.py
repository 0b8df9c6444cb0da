"""Webhooks both ways: signed rewards in (tamper, stale, replay refused); signed status out (retries, dead letters)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from eth_account import Account

from tests.support.stack import WEBHOOK_SECRET, WEBHOOK_SOURCE, WEBHOOK_TENANT, Stack
from tests.support.webhook_receiver import WebhookReceiver, assert_signed, register_endpoint
from webhooks.signing import signature_headers


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def event_body(wallet: str, event_id: str | None = None, event_type: str = "achievement.unlocked") -> bytes:
    event = {
        "id": event_id or f"evt-{time.time_ns()}",
        "type": event_type,
        "data": {"wallet": wallet, "context": {"achievements": ["dragon-slayer"]}},
    }
    return json.dumps(event).encode()


def post_event(client: httpx.Client, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    signed = signature_headers(WEBHOOK_SECRET, body) if headers is None else headers
    return client.post(
        f"/v1/webhooks/{WEBHOOK_SOURCE}", content=body, headers={**signed, "Content-Type": "application/json"}
    )


def set_endpoint(stack: Stack, tenant: str, url: str) -> str:
    return register_endpoint(stack.redis.url, tenant, url)


def wait_for_status(client: httpx.Client, job_id: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/mints/{job_id}").json()
        if body["status"] in ("confirmed", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{job_id} did not finish")


def wait_for_delivery(client: httpx.Client, job_id: str, state: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for delivery in client.get("/v1/webhook-deliveries").json()["deliveries"]:
            if delivery["job_id"] == job_id and delivery["state"] == state:
                found: dict[str, Any] = client.get(f"/v1/webhook-deliveries/{delivery['id']}").json()
                return found
        time.sleep(0.05)
    raise AssertionError(f"no {state} delivery for {job_id}")


def test_inbound_event_mints_and_a_signed_status_goes_back(stack: Stack) -> None:
    wallet = Account.create().address
    with WebhookReceiver() as receiver, stack.client(api_key="") as anonymous:
        secret = set_endpoint(stack, WEBHOOK_TENANT, receiver.url)
        accepted = post_event(anonymous, event_body(wallet, "evt-round-trip"))
        assert accepted.status_code == 202, accepted.text
        mint = accepted.json()["mint"]
        with stack.client(stack.new_key(WEBHOOK_TENANT)) as tenant:
            done = wait_for_status(tenant, mint["id"])
            assert done["status"] == "confirmed"
            assert done["recipient"] == wallet
        (status_event,) = receiver.wait_for(1)
    assert_signed(status_event, secret)
    payload = json.loads(status_event.body)
    assert payload["type"] == "mint.confirmed"
    assert payload["id"] == status_event.headers["x-personamint-event-id"]
    assert payload["data"]["mint"]["token_id"] == done["token_id"]
    assert payload["data"]["mint"]["tx_hash"] == done["tx_hash"]


def test_tampered_stale_replayed_and_unsigned_events_are_refused(stack: Stack) -> None:
    wallet = Account.create().address
    with stack.client(api_key="") as client:
        body = event_body(wallet, "evt-replay")
        headers = signature_headers(WEBHOOK_SECRET, body)
        tampered = body.replace(wallet.encode(), Account.create().address.encode())
        assert_problem(post_event(client, tampered, headers), 401, "invalid_signature")
        stale = signature_headers(WEBHOOK_SECRET, body, timestamp=int(time.time()) - 3600)
        assert_problem(post_event(client, body, stale), 401, "stale_timestamp")
        future = signature_headers(WEBHOOK_SECRET, body, timestamp=int(time.time()) + 3600)
        assert_problem(post_event(client, body, future), 401, "stale_timestamp")
        wrong_key = signature_headers("whsec_not_the_secret", body)
        assert_problem(post_event(client, body, wrong_key), 401, "invalid_signature")
        assert_problem(post_event(client, body, {}), 401, "missing_signature")

        first = post_event(client, body, headers)
        assert first.status_code == 202, first.text
        # The same request again (within the window) and the same event re-signed later: both refused.
        replay = assert_problem(post_event(client, body, headers), 409, "webhook_replayed")
        assert replay["event_id"] == "evt-replay"
        assert_problem(post_event(client, body), 409, "webhook_replayed")

        assert_problem(
            client.post("/v1/webhooks/nobody", content=body, headers=signature_headers(WEBHOOK_SECRET, body)),
            404,
            "unknown_webhook_source",
        )
        ignored = post_event(client, event_body(wallet, event_type="player.logged_in"))
        assert ignored.status_code == 200
        assert ignored.json()["status"] == "ignored"
        assert_problem(post_event(client, event_body("0xnot-a-wallet")), 400, "invalid_address")
        assert_problem(post_event(client, b"[1, 2]"), 400, "invalid_webhook_event")
        assert_problem(post_event(client, b"{not json"), 400, "invalid_json")


def test_receiver_failing_three_times_gets_exactly_one_delivery(stack: Stack) -> None:
    tenant = "tenant-hooks"
    key = stack.new_key(tenant)
    with WebhookReceiver([500, 503, 429]) as receiver, stack.client(key) as client:
        secret = set_endpoint(stack, tenant, receiver.url)
        job_id = client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
        assert wait_for_status(client, job_id)["status"] == "confirmed"
        delivery = wait_for_delivery(client, job_id, "delivered")
        requests = receiver.wait_for(4)
        time.sleep(0.5)  # nothing more may arrive once delivered
        requests = receiver.received
    assert [r.status for r in requests] == [500, 503, 429, 200]
    assert len({r.headers["x-personamint-event-id"] for r in requests}) == 1  # receivers can dedup
    assert len({r.body for r in requests}) == 1
    for request in requests:
        assert_signed(request, secret)
    assert delivery["state"] == "delivered"
    assert delivery["attempts"] == 4
    assert [attempt["status"] for attempt in delivery["history"]] == [500, 503, 429, 200]
    assert delivery["event_id"] == requests[0].headers["x-personamint-event-id"]


def test_dead_letters_are_listed_and_can_be_retried(stack: Stack) -> None:
    tenant = "tenant-dead"
    key = stack.new_key(tenant)
    # Four 500s exhaust the four tries the stack allows; then the endpoint recovers.
    with WebhookReceiver([500, 500, 500, 500]) as receiver, stack.client(key) as client:
        set_endpoint(stack, tenant, receiver.url)
        job_id = client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
        assert wait_for_status(client, job_id)["status"] == "confirmed"
        dead = wait_for_delivery(client, job_id, "dead")
        assert dead["attempts"] == 4
        assert "gave up after 4 tries" in dead["last_error"]
        listed = client.get("/v1/webhook-deliveries", params={"state": "dead"}).json()["deliveries"]
        assert [d["id"] for d in listed] == [dead["id"]]

        not_dead = client.post(f"/v1/webhook-deliveries/{dead['id']}x/retry")
        assert_problem(not_dead, 404, "delivery_not_found")
        retried = client.post(f"/v1/webhook-deliveries/{dead['id']}/retry", headers={"Idempotency-Key": "redo-1"})
        assert retried.status_code == 202, retried.text
        again = client.post(f"/v1/webhook-deliveries/{dead['id']}/retry", headers={"Idempotency-Key": "redo-1"})
        assert again.status_code == 202
        assert again.headers["idempotent-replayed"] == "true"
        delivered = wait_for_delivery(client, job_id, "delivered")
        assert delivered["attempts"] == 1
        assert_problem(client.post(f"/v1/webhook-deliveries/{dead['id']}/retry"), 409, "delivery_not_dead")
        assert [r.status for r in receiver.received] == [500, 500, 500, 500, 200]
    # Another tenant cannot see or retry it.
    with stack.client() as other:
        assert_problem(other.get(f"/v1/webhook-deliveries/{dead['id']}"), 404, "delivery_not_found")


def test_client_errors_are_not_retried(stack: Stack) -> None:
    tenant = "tenant-gone"
    key = stack.new_key(tenant)
    with WebhookReceiver([410]) as receiver, stack.client(key) as client:
        set_endpoint(stack, tenant, receiver.url)
        job_id = client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
        assert wait_for_status(client, job_id)["status"] == "confirmed"
        dead = wait_for_delivery(client, job_id, "dead")
        time.sleep(0.3)
        assert len(receiver.received) == 1
    assert dead["attempts"] == 1
    assert dead["last_status"] == 410
