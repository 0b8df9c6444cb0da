"""One wallet in, one minted token out: HTTP → worker → minter → chain → gateway, all real."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.contract import PersonaMint
from ipfs.cid import cid_for_bytes
from tests.support.polling import wait_for_job
from tests.support.stack import Stack


async def chain_view(stack: Stack, token_id: int, request_id: str) -> tuple[str, str, int | None, int]:
    w3 = AsyncWeb3(AsyncHTTPProvider(stack.anvil.url))
    contract = PersonaMint(w3, stack.contract_address)
    try:
        return (
            await contract.owner_of(token_id),
            await contract.token_uri(token_id),
            await contract.token_id_of(bytes.fromhex(request_id[2:])),
            await contract.total_minted(),
        )
    finally:
        await w3.provider.disconnect()


def test_one_wallet_in_one_token_out(stack: Stack) -> None:
    recipient = Account.create().address
    body = {"recipient": recipient, "collection": "default", "context": {"achievements": ["first-blood"]}}
    with stack.client() as client:
        accepted = client.post("/v1/mints", json=body, headers={"Idempotency-Key": "skeleton-1"})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert job["status"] == "queued"
        assert job["links"]["self"] == f"/v1/mints/{job['id']}"

        done = wait_for_job(client, job["id"])
        assert done["status"] == "confirmed", done
        assert done["recipient"] == recipient
        for stage in ("profile", "style", "render", "pin", "mint"):
            assert done["timings"][stage] > 0, stage

        owner, token_uri, by_request, total = asyncio.run(chain_view(stack, done["token_id"], done["request_id"]))
        assert owner == recipient
        assert token_uri == done["token_uri"]
        assert by_request == done["token_id"]

        # tokenURI resolves through the gateway; the image matches its CID and recorded hash.
        metadata_cid = token_uri.removeprefix("ipfs://")
        metadata_response = client.get(f"/ipfs/{metadata_cid}")
        assert metadata_response.status_code == 200
        assert metadata_response.headers["content-type"].startswith("application/json")
        assert cid_for_bytes(metadata_response.content) == metadata_cid
        metadata = json.loads(metadata_response.content)
        image_cid = metadata["image"].removeprefix("ipfs://")
        image = client.get(f"/ipfs/{image_cid}")
        assert image.headers["content-type"] == "image/png"
        assert image.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert cid_for_bytes(image.content) == image_cid
        assert hashlib.sha256(image.content).hexdigest() == metadata["provenance"]["image_sha256"]
        assert metadata["provenance"]["params"] == done["style"]
        assert metadata["provenance"]["recipient"] == recipient
        assert {a["trait_type"] for a in metadata["attributes"]} >= {"Palette", "Medium", "Motif", "Mood"}

        # Same key + same body: the same job, and no second token.
        again = client.post("/v1/mints", json=body, headers={"Idempotency-Key": "skeleton-1"})
        assert again.status_code == 202
        assert again.json()["id"] == job["id"]
        assert again.headers.get("idempotent-replayed") == "true"
        time.sleep(1.0)
        _, _, _, total_after = asyncio.run(chain_view(stack, done["token_id"], done["request_id"]))
        assert total_after == total

        # Same key + another body: a conflict, not a new job.
        other = client.post("/v1/mints", json={**body, "context": {}}, headers={"Idempotency-Key": "skeleton-1"})
        assert other.status_code == 409
        assert other.json()["code"] == "idempotency_conflict"


def test_editions_count_per_recipient_and_seed_differs(stack: Stack) -> None:
    recipient = Account.create().address
    with stack.client() as client:
        first = wait_for_job(client, client.post("/v1/mints", json={"recipient": recipient}).json()["id"])
        second = wait_for_job(client, client.post("/v1/mints", json={"recipient": recipient.lower()}).json()["id"])
    assert first["status"] == second["status"] == "confirmed"
    assert (first["edition"], second["edition"]) == (0, 1)
    assert first["token_id"] != second["token_id"]
    # The second mint reads a history that now holds the first token.
    assert first["profile"]["erc721_transfers"] == 0
    assert second["profile"]["erc721_transfers"] == 1
    assert second["profile"]["nfts_held"] == 1
    assert first["image_uri"] != second["image_uri"]


def test_verify_rerenders_a_minted_token(stack: Stack) -> None:
    from config.collections import load_collections
    from config.settings import PROJECT_ROOT
    from pipeline.verify import verify_token

    with stack.client() as client:
        done = wait_for_job(client, client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"])
    report = asyncio.run(
        verify_token(
            rpc_url=stack.anvil.url,
            contract_address=stack.contract_address,
            token_id=done["token_id"],
            gateway_url=stack.base_url,
            collections=load_collections(PROJECT_ROOT / "collections"),
        )
    )
    assert report.ok, report
    assert report.checks == {
        "metadata_cid": True,
        "image_cid": True,
        "image_sha256": True,
        "params_sha256": True,
        "rerender_pixels": True,
    }
    # A tampered collection (another palette under the same name) no longer reproduces the pixels.
    collections = load_collections(PROJECT_ROOT / "collections")
    dna = collections["default"]
    palette = done["style"]["palette"]
    tampered = dict(dna.palettes)
    other = next(name for name in tampered if name != palette)
    tampered[palette] = tampered[other]
    import dataclasses

    collections["default"] = dataclasses.replace(dna, palettes=tampered)
    bad = asyncio.run(
        verify_token(
            rpc_url=stack.anvil.url,
            contract_address=stack.contract_address,
            token_id=done["token_id"],
            gateway_url=stack.base_url,
            collections=collections,
        )
    )
    assert not bad.ok
    assert bad.checks["rerender_pixels"] is False
