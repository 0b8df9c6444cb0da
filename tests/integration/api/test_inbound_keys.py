"""An inbound webhook event mints under a key of its own: no caller of the same tenant can pre-claim it."""

from __future__ import annotations

import json
import time

import httpx
from eth_account import Account

from jobs.keys import inbound_idempotency_key
from tests.support.stack import WEBHOOK_SECRET, WEBHOOK_SOURCE, WEBHOOK_TENANT, Stack
from webhooks.signing import signature_headers


def _post_event(client: httpx.Client, event_id: str, wallet: str) -> httpx.Response:
    body = json.dumps(
        {"id": event_id, "type": "achievement.unlocked", "data": {"wallet": wallet, "context": {}}}
    ).encode()
    headers = {**signature_headers(WEBHOOK_SECRET, body), "Content-Type": "application/json"}
    return client.post(f"/v1/webhooks/{WEBHOOK_SOURCE}", content=body, headers=headers)


def test_a_caller_of_the_same_tenant_cannot_pre_claim_a_future_event(stack: Stack) -> None:
    event_id = f"evt-preclaim-{time.time_ns()}"
    insider_key = stack.new_key(WEBHOOK_TENANT)
    winner = Account.create().address
    with stack.client(insider_key) as insider, stack.client(api_key="") as anonymous:
        # The spelling the event's mint used to take, sent first by a caller of the source's tenant.
        claim = insider.post(
            "/v1/mints",
            json={"recipient": Account.create().address},
            headers={"Idempotency-Key": f"webhook:{WEBHOOK_SOURCE}:{event_id}"},
        )
        assert claim.status_code == 202, claim.text
        # The spelling it takes now cannot be sent at all.
        spelled = insider.post(
            "/v1/mints",
            json={"recipient": Account.create().address},
            headers={"Idempotency-Key": inbound_idempotency_key(WEBHOOK_SOURCE, event_id)},
        )
        assert spelled.status_code == 400, spelled.text
        assert spelled.json()["code"] == "invalid_idempotency_key"

        accepted = _post_event(anonymous, event_id, winner)
        assert accepted.status_code == 202, accepted.text
        mint_id = accepted.json()["mint"]["id"]
        assert mint_id != claim.json()["id"]
        replay = _post_event(anonymous, event_id, winner)
        assert replay.status_code == 409
        assert replay.json()["code"] == "webhook_replayed"
    with stack.client(insider_key) as insider:
        assert insider.get(f"/v1/mints/{mint_id}").json()["recipient"] == winner
