"""KuboPinner against a local server speaking the Kubo RPC API: DAG settings, CID check, errors, timeouts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from ipfs.cid import CHUNK_SIZE, cid_for_bytes
from ipfs.pinning import (
    CIDMismatch,
    Pinner,
    PinningRejected,
    PinningUnavailable,
    PinTimeout,
    WaitPolicy,
)
from ipfs.pinning.kubo import ADD_PARAMS, KuboPinner
from tests.support.pinning_servers import FakeKubo, parse_multipart

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
# Fast retries keep the error paths to milliseconds.
FAST = WaitPolicy(timeout_s=10, request_timeout_s=5, retries=2, backoff_s=0.01)


@pytest.fixture
def kubo() -> Iterator[FakeKubo]:
    with FakeKubo() as server:
        yield server


async def test_add_sends_our_dag_settings_then_pins(kubo: FakeKubo) -> None:
    async with KuboPinner(kubo.url, policy=FAST) as pinner:
        assert isinstance(pinner, Pinner)
        cid = await pinner.pin(PNG, content_type="image/png", name="token-1.png")
    assert cid == cid_for_bytes(PNG)
    (add,) = kubo.calls("/api/v0/add")
    assert add.method == "POST"
    assert add.query["cid-version"] == "1"
    assert add.query["raw-leaves"] == "true"
    assert add.query["chunker"] == "size-262144"
    assert add.query == ADD_PARAMS
    # The exact bytes went up as a file.
    (part,) = parse_multipart(add.headers["content-type"], add.body).values()
    assert part.data == PNG
    assert part.filename == "token-1.png"
    # Added unpinned, then pinned only once the CID checked out.
    (pin_add,) = kubo.calls("/api/v0/pin/add")
    assert pin_add.query["arg"] == cid
    assert kubo.requests.index(add) < kubo.requests.index(pin_add)
    assert cid in kubo.pins


async def test_5mb_image_builds_the_same_multi_level_dag(kubo: FakeKubo) -> None:
    image = os.urandom(5 * 1024 * 1024)
    assert len(image) // CHUNK_SIZE == 20  # a root over 20 raw leaves
    async with KuboPinner(kubo.url, policy=FAST) as pinner:
        cid = await pinner.pin(image, content_type="image/png")
        assert cid == cid_for_bytes(image)
        assert cid.startswith("bafybei")  # dag-pb root, not a single raw block
        assert kubo.blocks[cid] == image
        back = await pinner.get(cid)
    assert back is not None
    assert back.data == image


async def test_a_node_with_other_import_settings_fails_with_cid_mismatch_and_pins_nothing() -> None:
    with FakeKubo(ignore_import_params=True) as kubo:
        async with KuboPinner(kubo.url, policy=FAST) as pinner:
            with pytest.raises(CIDMismatch) as caught:
                await pinner.pin(PNG, content_type="image/png")
    assert caught.value.code == "cid_mismatch"
    assert caught.value.expected == cid_for_bytes(PNG)
    assert caught.value.actual == cid_for_bytes(PNG, version=0)
    assert "kubo" in str(caught.value)
    assert "chunker" in str(caught.value)
    assert kubo.calls("/api/v0/pin/add") == []
    assert kubo.pins == set()


async def test_gateway_trouble_and_dropped_connections_are_retried(kubo: FakeKubo) -> None:
    kubo.trouble.extend([503, "drop"])
    async with KuboPinner(kubo.url, policy=FAST) as pinner:
        cid = await pinner.pin(PNG, content_type="image/png")
    assert cid in kubo.pins
    assert len(kubo.calls("/api/v0/add")) == 3


async def test_a_kubo_command_error_is_not_retried(kubo: FakeKubo) -> None:
    kubo.trouble.append(500)  # {"Message", "Code": 0, "Type": "error"}
    async with KuboPinner(kubo.url, policy=FAST) as pinner:
        with pytest.raises(PinningRejected, match="scripted failure") as caught:
            await pinner.pin(PNG, content_type="image/png")
    assert caught.value.status_code == 500
    assert len(kubo.calls("/api/v0/add")) == 1


async def test_retries_run_out_on_a_service_that_stays_down(kubo: FakeKubo) -> None:
    kubo.trouble.extend([502, 502, 502])
    async with KuboPinner(kubo.url, policy=FAST) as pinner:
        with pytest.raises(PinningUnavailable, match="after 3 attempts") as caught:
            await pinner.pin(PNG, content_type="image/png")
    assert caught.value.code == "pinning_unavailable"


async def test_an_unreachable_node_is_unavailable() -> None:
    server = FakeKubo().start()
    url = server.url
    server.stop()
    async with KuboPinner(url, policy=FAST) as pinner:
        with pytest.raises(PinningUnavailable, match="ConnectError"):
            await pinner.pin(PNG, content_type="image/png")


async def test_the_authorization_header_is_sent_and_a_refusal_is_final() -> None:
    with FakeKubo(token="Bearer right") as kubo:
        async with KuboPinner(kubo.url, policy=FAST, authorization="Bearer wrong") as pinner:
            with pytest.raises(PinningRejected) as caught:
                await pinner.pin(PNG, content_type="image/png")
        assert caught.value.status_code == 403
        assert len(kubo.requests) == 1
        async with KuboPinner(kubo.url, policy=FAST, authorization="Bearer right") as pinner:
            assert await pinner.pin(PNG, content_type="image/png") == cid_for_bytes(PNG)


async def test_a_stalled_node_hits_the_pin_timeout(kubo: FakeKubo) -> None:
    kubo.stall_all_s = 10
    policy = WaitPolicy(timeout_s=0.5, request_timeout_s=5, retries=0)
    started = time.monotonic()
    async with KuboPinner(kubo.url, policy=policy) as pinner:
        with pytest.raises(PinTimeout) as caught:
            await pinner.pin(PNG, content_type="image/png")
    assert time.monotonic() - started < 3
    assert caught.value.code == "pin_timeout"
    assert caught.value.cid == cid_for_bytes(PNG)


async def test_a_slow_request_is_retried_within_the_pin_timeout(kubo: FakeKubo) -> None:
    kubo.trouble.append(("stall", 2.0))
    policy = WaitPolicy(timeout_s=10, request_timeout_s=0.3, retries=1, backoff_s=0.01)
    async with KuboPinner(kubo.url, policy=policy) as pinner:
        cid = await pinner.pin(PNG, content_type="image/png")
    assert cid in kubo.pins
    assert len(kubo.calls("/api/v0/add")) == 2


async def test_get_reads_back_verified_bytes_and_none_when_not_pinned(kubo: FakeKubo) -> None:
    async with KuboPinner(kubo.url, policy=FAST) as pinner:
        cid = await pinner.pin(PNG, content_type="image/png")
        found = await pinner.get(cid)
        assert found is not None
        assert (found.data, found.content_type) == (PNG, "image/png")
        assert await pinner.get(cid_for_bytes(b"never pinned")) is None
        kubo.blocks[cid] = b"tampered"
        with pytest.raises(CIDMismatch):
            await pinner.get(cid)
