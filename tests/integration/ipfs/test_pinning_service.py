"""PinningServicePinner against the npm `mock-ipfs-pinning-service`: statuses, our timeout, our validation.

The mock takes a pin's status from its name prefix and otherwise leaves it `queued`
forever; it also accepts a pin without a CID. So what is tested here is our side:
the wait policy, the timeout, reuse of a live request, and refusing statuses that are
not about our CID.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from ipfs.cid import InvalidCID, cid_for_bytes
from ipfs.pinning import CIDMismatch, PinFailed, PinningRejected, PinningResponseError, PinTimeout, WaitPolicy
from ipfs.pinning.kubo import KuboPinner
from ipfs.pinning.pinning_service import PinningServicePinner
from tests.support.pinning_servers import FakeKubo, MockPinningService

TOKEN = "secret-token"
FAST = WaitPolicy(timeout_s=10, request_timeout_s=5, retries=1, backoff_s=0.01, poll_s=0.05, max_poll_s=0.2)


@pytest.fixture(scope="module")
def service() -> Iterator[MockPinningService]:
    with MockPinningService(TOKEN) as mock:
        yield mock


def _image() -> bytes:
    # Fresh bytes per test: the mock keys pins by CID for the whole module.
    return b"\x89PNG\r\n\x1a\n" + os.urandom(4096)


def _pins(service: MockPinningService, cid: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{service.url}/pins",
        params={"cid": cid, "status": "queued,pinning,pinned,failed"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    response.raise_for_status()
    results: list[dict[str, object]] = response.json()["results"]
    return results


async def test_provider_gets_the_bytes_then_the_service_pins_our_cid(service: MockPinningService) -> None:
    image = _image()
    with FakeKubo() as kubo:
        provider = KuboPinner(kubo.url, policy=FAST)
        async with PinningServicePinner(
            service.url,
            token=TOKEN,
            policy=FAST,
            provider=provider,
            origins=["/ip4/127.0.0.1/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ"],
        ) as pinner:
            cid = await pinner.pin(image, content_type="image/png", name="pinned-token-1.png")
        assert cid == cid_for_bytes(image)
        assert kubo.blocks[cid] == image
        assert cid in kubo.pins
    (remote,) = _pins(service, cid)
    assert remote["status"] == "pinned"
    pin = remote["pin"]
    assert isinstance(pin, dict)
    assert pin["cid"] == cid
    assert pin["meta"] == {"content_type": "image/png"}
    assert pin["origins"] == ["/ip4/127.0.0.1/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ"]


async def test_a_pin_that_stays_queued_hits_our_timeout(service: MockPinningService) -> None:
    image = _image()
    policy = WaitPolicy(timeout_s=0.8, poll_s=0.05, max_poll_s=0.1, retries=0)
    started = time.monotonic()
    async with PinningServicePinner(service.url, token=TOKEN, policy=policy) as pinner:
        with pytest.raises(PinTimeout) as caught:
            await pinner.pin(image, content_type="image/png", name="token-2.png")
    elapsed = time.monotonic() - started
    assert 0.7 < elapsed < 3
    assert caught.value.last_status == "queued"
    assert caught.value.code == "pin_timeout"
    # One request was made, and it is still there, queued, for a later retry to reuse.
    (remote,) = _pins(service, cid_for_bytes(image))
    assert remote["status"] == "queued"


async def test_a_retry_after_a_timeout_reuses_the_live_request(service: MockPinningService) -> None:
    image = _image()
    policy = WaitPolicy(timeout_s=0.3, poll_s=0.05, max_poll_s=0.1, retries=0)
    async with PinningServicePinner(service.url, token=TOKEN, policy=policy) as pinner:
        for _ in range(2):
            with pytest.raises(PinTimeout):
                await pinner.pin(image, content_type="image/png")
    assert len(_pins(service, cid_for_bytes(image))) == 1


async def test_accepting_queued_returns_at_once(service: MockPinningService) -> None:
    lenient = WaitPolicy(accept="queued", timeout_s=5, poll_s=0.05, max_poll_s=0.1)
    async with PinningServicePinner(service.url, token=TOKEN, policy=lenient) as pinner:
        started = time.monotonic()
        cid = await pinner.pin(_image(), content_type="image/png")
        assert time.monotonic() - started < 1
        remote = await pinner.find(cid)
    assert remote is not None
    assert remote.status == "queued"


async def test_a_failed_pin_fails(service: MockPinningService) -> None:
    async with PinningServicePinner(service.url, token=TOKEN, policy=FAST) as pinner:
        with pytest.raises(PinFailed) as caught:
            await pinner.pin(_image(), content_type="image/png", name="failed-token.png")
    assert caught.value.code == "pin_failed"


async def test_a_status_without_our_cid_is_refused(service: MockPinningService) -> None:
    # The mock accepts a pin with no CID at all; a status like that must never count as pinned.
    response = httpx.post(
        f"{service.url}/pins", json={"name": "pinned-no-cid"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "pinned"
    requestid = response.json()["requestid"]
    cid = cid_for_bytes(_image())
    async with PinningServicePinner(service.url, token=TOKEN, policy=FAST) as pinner:
        with pytest.raises(PinningResponseError, match="names no CID"):
            await pinner.wait_for(requestid, cid)


async def test_a_status_for_another_cid_is_refused(service: MockPinningService) -> None:
    other = cid_for_bytes(_image())
    response = httpx.post(
        f"{service.url}/pins", json={"cid": other, "name": "pinned-x"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    async with PinningServicePinner(service.url, token=TOKEN, policy=FAST) as pinner:
        with pytest.raises(PinningResponseError, match=f"is for {other}"):
            await pinner.wait_for(response.json()["requestid"], cid_for_bytes(_image()))


async def test_we_never_ask_to_pin_something_that_is_not_a_cid(service: MockPinningService) -> None:
    before = httpx.get(f"{service.url}/pins", headers={"Authorization": f"Bearer {TOKEN}"}).json()["count"]
    async with PinningServicePinner(service.url, token=TOKEN, policy=FAST) as pinner:
        for bad in ("", "not-a-cid", "bafkqaaa"):
            with pytest.raises(InvalidCID):
                await pinner.pin_cid(bad)
    after = httpx.get(f"{service.url}/pins", headers={"Authorization": f"Bearer {TOKEN}"}).json()["count"]
    assert after == before


async def test_a_wrong_token_is_rejected_once(service: MockPinningService) -> None:
    async with PinningServicePinner(service.url, token="wrong", policy=FAST) as pinner:
        with pytest.raises(PinningRejected, match="access token is invalid") as caught:
            await pinner.pin(_image(), content_type="image/png")
    assert caught.value.status_code == 401


async def test_a_provider_that_builds_another_dag_stops_the_pin(service: MockPinningService) -> None:
    image = _image()
    with FakeKubo(ignore_import_params=True) as kubo:
        async with PinningServicePinner(
            service.url, token=TOKEN, policy=FAST, provider=KuboPinner(kubo.url, policy=FAST)
        ) as pinner:
            with pytest.raises(CIDMismatch):
                await pinner.pin(image, content_type="image/png", name="pinned-y")
    assert _pins(service, cid_for_bytes(image)) == []
