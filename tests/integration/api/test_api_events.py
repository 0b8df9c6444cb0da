"""Live progress (SSE with Last-Event-ID resume), previews that match the next mint, cached profiles."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from tests.support.stack import Stack

ORDER = ["queued", "profiling", "styling", "rendering", "pinning", "minting", "confirmed"]


def read_events(
    client: httpx.Client, job_id: str, last_event_id: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Read SSE events (id, event, data) until the server closes the stream or `limit` are read."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with client.stream("GET", f"/v1/mints/{job_id}/events", headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "":
                if "data" in current:
                    events.append(current)
                    if limit is not None and len(events) >= limit:
                        break
                current = {}
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
    for event in events:
        event["data"] = json.loads(event["data"])
    return events


def test_sse_streams_every_status_with_timings_and_resumes(stack: Stack) -> None:
    with stack.client() as client:
        job_id = client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
        # Watch live: read the first two events, drop the connection, resume from the last id.
        first = read_events(client, job_id, limit=2)
        rest = read_events(client, job_id, last_event_id=first[-1]["id"])
        live = first + rest
        statuses = [event["data"]["status"] for event in live]
        assert statuses[-1] == "confirmed", statuses
        assert statuses[0] == "queued"
        assert [s for s in ORDER if s in statuses] == [s for s in statuses if s in ORDER]  # in order
        assert len({event["id"] for event in live}) == len(live)  # no repeats across the reconnect
        assert all(event["event"] == "status" for event in live)
        assert live[-1]["data"]["timings"].keys() >= {"profile", "style", "render", "pin", "mint"}

        # After the end: a full replay equals what was seen live; resuming from the end returns at once.
        replay = read_events(client, job_id)
        assert [e["id"] for e in replay] == [e["id"] for e in live]
        started = time.monotonic()
        assert read_events(client, job_id, last_event_id=live[-1]["id"]) == []
        assert time.monotonic() - started < 5
        resumed = read_events(client, job_id, last_event_id=live[2]["id"])
        assert [e["id"] for e in resumed] == [e["id"] for e in live[3:]]

        bad = client.get(f"/v1/mints/{job_id}/events", headers={"Last-Event-ID": "not-an-id"})
        assert bad.status_code == 400
        assert bad.json()["code"] == "invalid_last_event_id"
        assert client.get("/v1/mints/nope/events").status_code == 404


def wait_for(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/mints/{job_id}").json()
        if body["status"] in ("confirmed", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError("mint did not finish")


def test_preview_is_the_image_the_next_mint_gets(stack: Stack) -> None:
    wallet = Account.create().address
    request = {"recipient": wallet, "context": {"achievements": ["speedrun"]}}
    with stack.client() as client:
        preview = client.post("/v1/previews", json=request)
        assert preview.status_code == 200, preview.text
        view = preview.json()
        assert view["edition"] == 0
        assert view["cached"] is False
        image = client.get(view["image_url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert hashlib.sha256(image.content).hexdigest() == view["image_sha256"]

        cached = client.post("/v1/previews", json=request).json()
        assert cached["cached"] is True
        assert cached["preview_id"] == view["preview_id"]

        done = wait_for(client, client.post("/v1/mints", json=request).json()["id"])
        assert done["status"] == "confirmed"
        assert done["edition"] == 0
        assert done["style"] == view["style"]
        metadata = client.get(done["metadata_url"]).json()
        assert metadata["provenance"]["pixel_sha256"] == view["pixel_sha256"]
        minted_image = client.get(done["image_url"]).content
        assert minted_image == image.content

        # The next preview is for edition 1: another seed.
        after = client.post("/v1/previews", json=request).json()
        assert after["edition"] == 1
        assert after["seed"] != view["seed"]


def test_a_mint_with_its_preview_id_gets_the_previewed_image_whatever_the_wallet_did_since(stack: Stack) -> None:
    w3 = Web3(Web3.HTTPProvider(stack.anvil.url))
    wallet: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [wallet.address, hex(10**18)])  # type: ignore[arg-type]
    request = {"recipient": wallet.address, "context": {"hours": 5}}
    with stack.client() as client:
        view = client.post("/v1/previews", json=request).json()
        assert view["profile"]["tx_count"] == 0
        # The wallet becomes active after its preview: twelve plain transactions.
        for nonce in range(12):
            tx = {"to": wallet.address, "value": 0, "gas": 21_000, "nonce": nonce, "chainId": stack.chain_id,
                  "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}  # fmt: skip
            w3.eth.wait_for_transaction_receipt(
                w3.eth.send_raw_transaction(wallet.sign_transaction(tx).raw_transaction)
            )

        # Previews and profiles are block-true: asked again after that activity, they show it.
        fresh = client.post("/v1/previews", json=request).json()
        assert fresh["cached"] is False
        assert fresh["block_number"] > view["block_number"]
        assert fresh["profile"]["tx_count"] == 12
        profile = client.get(f"/v1/profiles/{wallet.address}").json()
        assert (profile["block_number"], profile["profile"]["tx_count"]) == (fresh["block_number"], 12)

        # Errors first: an unknown id, another recipient's or context's preview.
        for body, status, code in (
            ({**request, "preview_id": "no-such-preview"}, 404, "preview_not_found"),
            ({**request, "context": {"hours": 6}, "preview_id": view["preview_id"]}, 409, "preview_mismatch"),
            ({"recipient": Account.create().address, "preview_id": view["preview_id"]}, 409, "preview_mismatch"),
        ):
            refused = client.post("/v1/mints", json=body)
            assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text

        with_id = wait_for(
            client, client.post("/v1/mints", json={**request, "preview_id": view["preview_id"]}).json()["id"]
        )
        assert with_id["status"] == "confirmed", with_id
        assert with_id["style"] == view["style"]
        assert with_id["profile"]["block_number"] == view["block_number"]
        assert client.get(with_id["metadata_url"]).json()["provenance"]["pixel_sha256"] == view["pixel_sha256"]
        assert client.get(with_id["image_url"]).content == client.get(view["image_url"]).content

        # The same preview cannot mint again (the wallet's next edition is another image) ...
        again = client.post("/v1/mints", json={**request, "preview_id": view["preview_id"]})
        assert (again.status_code, again.json()["code"]) == (409, "preview_outdated"), again.text
        # ... and a mint without a preview reads the history at its own block: the new activity.
        without = wait_for(client, client.post("/v1/mints", json=request).json()["id"])
        assert without["status"] == "confirmed", without
        assert without["profile"]["tx_count"] == 12
        assert without["profile"]["block_number"] > view["block_number"]
        assert without["style"]["complexity"] > view["style"]["complexity"]


def test_preview_idempotency_and_errors(stack: Stack) -> None:
    wallet = Account.create().address
    with stack.client() as client:
        headers = {"Idempotency-Key": "preview-1"}
        first = client.post("/v1/previews", json={"recipient": wallet}, headers=headers)
        assert first.status_code == 200
        again = client.post("/v1/previews", json={"recipient": wallet}, headers=headers)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        other = client.post("/v1/previews", json={"recipient": Account.create().address}, headers=headers)
        assert other.status_code == 409
        assert other.json()["code"] == "idempotency_conflict"
        assert client.post("/v1/previews", json={"recipient": "0x12"}).json()["code"] == "invalid_address"
        unknown = client.post("/v1/previews", json={"recipient": wallet, "collection": "nope"})
        assert unknown.json()["code"] == "unknown_collection"
        assert client.get("/v1/previews/not-a-real-preview/image").status_code == 404


def test_profile_is_cached(stack: Stack) -> None:
    wallet = Account.create().address
    with stack.client() as client:
        first = client.get(f"/v1/profiles/{wallet}")
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["address"] == wallet
        assert body["persona"]
        assert set(body["style"]) >= {"palette", "medium", "motif", "mood"}
        assert body["cached"] is False
        second = client.get(f"/v1/profiles/{wallet.lower()}").json()
        assert second["cached"] is True
        assert second["style"] == body["style"]
        assert client.get("/v1/profiles/0xnope").json()["code"] == "invalid_address"
        assert client.get(f"/v1/profiles/{wallet}", params={"collection": "nope"}).status_code == 404


def test_preview_without_a_render_worker_is_a_retryable_503(stack: Stack) -> None:
    """Previews render on the workers (their renderer is the mint's); with none listening, a 503 in time."""
    import asyncio

    from tests.support.stack import issue_api_key

    lonely_redis = stack.redis.url.rsplit("/", 1)[0] + "/1"  # same server, a database no worker serves
    base_url = stack.spawn_api(
        "api-no-workers", {"PERSONAMINT_REDIS_URL": lonely_redis, "PERSONAMINT_PREVIEW_TIMEOUT_S": "1"}
    )
    api_key = asyncio.run(issue_api_key(lonely_redis, "tenant-lonely"))
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as client:
        started = time.monotonic()
        response = client.post("/v1/previews", json={"recipient": Account.create().address})
        assert time.monotonic() - started < 10
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "preview_unavailable"
        assert response.headers["retry-after"] == "5"
