"""Rarity caps through the live stack: a preview of a capped wallet is the mint made with its preview id.

Its own stack (the shared one's collection has no caps): the default collection with bullion, the
whale's palette, in at most one token (tests/data/style_caps_bullion.toml).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from devstack.local import deployed_services
from tests.support.polling import wait_for_job
from tests.support.stack import STACK_ENV, issue_api_key

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CAPS = PROJECT_ROOT / "tests" / "data" / "style_caps_bullion.toml"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Web3]]:
    root = tmp_path_factory.mktemp("capped-stack")
    collections = root / "collections"
    collections.mkdir()
    default = (PROJECT_ROOT / "collections" / "default.toml").read_text()
    (collections / "default.toml").write_text(default + "\n" + CAPS.read_text())
    extra = {**STACK_ENV, "PERSONAMINT_COLLECTIONS_DIR": str(collections)}
    with deployed_services(root, extra=extra) as deployed:
        key = asyncio.run(issue_api_key(deployed.redis.url, "studio"))
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=deployed.services.base_url, headers=headers, timeout=60) as client:
            yield client, Web3(Web3.HTTPProvider(deployed.anvil.url))


def new_whale(w3: Web3) -> str:
    wallet: str = Account.create().address
    w3.provider.make_request("anvil_setBalance", [wallet, hex(5000 * 10**18)])  # type: ignore[arg-type]
    return wallet


def minted(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/mints", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"], timeout_s=120)
    assert job["status"] == "confirmed", job
    return job


def test_a_preview_of_a_capped_wallet_is_the_mint_made_with_its_preview_id(capped: tuple[httpx.Client, Web3]) -> None:
    client, w3 = capped
    early, first, late = new_whale(w3), new_whale(w3), new_whale(w3)

    # A preview only looks: the one bullion is still free when `early` previews, and still free after.
    before = client.post("/v1/previews", json={"recipient": early}).json()
    assert (before["persona"], before["style"]["palette"]) == ("whale", "bullion")

    # `first` mints without a preview and takes the one bullion.
    taken = minted(client, {"recipient": first})
    assert taken["style"]["palette"] == "bullion"
    assert "caps" not in client.get(taken["metadata_url"]).json()["provenance"]["orchestrator"]

    # The cap filled since `early`'s preview: its mint ends preview_outdated, it reserved nothing.
    outdated = client.post("/v1/mints", json={"recipient": early, "preview_id": before["preview_id"]})
    assert (outdated.status_code, outdated.json()["code"]) == (409, "preview_outdated"), outdated.text
    assert "palette" in outdated.json()["detail"]

    # Asked again, `early`'s preview is not the cached bullion one: the cap's counts key the answer.
    again = client.post("/v1/previews", json={"recipient": early}).json()
    assert again["cached"] is False
    assert again["style"]["palette"] != "bullion"

    # A capped wallet's preview shows its next-best palette, and the mint with its id is exactly that.
    view = client.post("/v1/previews", json={"recipient": late}).json()
    assert view["persona"] == "whale"
    next_best = view["style"]["palette"]
    assert next_best != "bullion"
    assert (view["style"]["medium"], view["style"]["motif"], view["style"]["mood"]) == ("oil", "rings", "opulent")
    with_id = minted(client, {"recipient": late, "preview_id": view["preview_id"]})
    assert with_id["style"] == view["style"]
    metadata = client.get(with_id["metadata_url"]).json()
    assert metadata["provenance"]["pixel_sha256"] == view["pixel_sha256"]
    assert client.get(with_id["image_url"]).content == client.get(view["image_url"]).content
    assert metadata["provenance"]["orchestrator"]["caps"] == [
        {"field": "palette", "wanted": "bullion", "got": next_best, "cap": {"max": 1}}
    ]

    # `early`'s new preview shows its own next-best, and its mint with that id gets it.
    again = client.post("/v1/previews", json={"recipient": early}).json()
    assert again["style"]["palette"] != "bullion"
    assert minted(client, {"recipient": early, "preview_id": again["preview_id"]})["style"] == again["style"]

    # A mint without a preview gets its wallet's next-best too, recorded in its metadata.
    plain = minted(client, {"recipient": new_whale(w3)})
    assert plain["style"]["palette"] != "bullion"
    recorded = client.get(plain["metadata_url"]).json()["provenance"]["orchestrator"]["caps"]
    assert recorded == [{"field": "palette", "wanted": "bullion", "got": plain["style"]["palette"], "cap": {"max": 1}}]
