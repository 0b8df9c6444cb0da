"""PinataPinner against a local server speaking Pinata's upload APIs: exact bytes, CIDv1, errors, timeouts."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from ipfs.cid import cid_for_bytes
from ipfs.pinning import CIDMismatch, PinningRejected, PinTimeout, WaitPolicy
from ipfs.pinning.pinata import PinataPinner
from tests.support.pinning_servers import FakePinata, parse_multipart

JWT = "jwt-for-tests"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
# Compact canonical JSON, as the pipeline writes metadata; any re-encoding changes its CID.
METADATA = json.dumps({"name": "Persona #1", "image": "ipfs://x"}, separators=(",", ":"), sort_keys=True).encode()
FAST = WaitPolicy(timeout_s=10, request_timeout_s=5, retries=2, backoff_s=0.01)


@pytest.fixture
def pinata() -> Iterator[FakePinata]:
    with FakePinata(token=JWT) as server:
        yield server


def _legacy(server: FakePinata, **kwargs: object) -> PinataPinner:
    return PinataPinner(JWT, api="legacy", api_url=server.url, gateway_url=server.url, policy=FAST, **kwargs)  # type: ignore[arg-type]


async def test_legacy_upload_sends_exact_bytes_as_a_file_asking_for_cid_v1(pinata: FakePinata) -> None:
    async with _legacy(pinata) as pinner:
        cid = await pinner.pin(METADATA, content_type="application/json", name="token-1.json")
    assert cid == cid_for_bytes(METADATA)
    (upload,) = pinata.calls("/pinning/pinFileToIPFS")
    assert upload.headers["authorization"] == f"Bearer {JWT}"
    parts = parse_multipart(upload.headers["content-type"], upload.body)
    assert parts["file"].data == METADATA  # byte for byte: never re-serialised
    assert parts["file"].filename == "token-1.json"
    assert json.loads(parts["pinataOptions"].data)["cidVersion"] == 1
    assert json.loads(parts["pinataMetadata"].data)["name"] == "token-1.json"
    assert pinata.calls("/pinning/pinJSONToIPFS") == []


async def test_v3_upload_is_public_and_answers_the_same_cid(pinata: FakePinata) -> None:
    async with PinataPinner(JWT, api="v3", uploads_url=pinata.url, policy=FAST) as pinner:
        cid = await pinner.pin(PNG, content_type="image/png", name="token-1.png")
    assert cid == cid_for_bytes(PNG)
    (upload,) = pinata.calls("/v3/files")
    parts = parse_multipart(upload.headers["content-type"], upload.body)
    assert parts["file"].data == PNG
    assert parts["network"].data == b"public"


async def test_5mb_image_cid_matches(pinata: FakePinata) -> None:
    image = os.urandom(5 * 1024 * 1024)
    async with _legacy(pinata) as pinner:
        cid = await pinner.pin(image, content_type="image/png")
        assert cid == cid_for_bytes(image)
        back = await pinner.get(cid)
    assert back is not None
    assert back.data == image
    assert back.content_type == "image/png"


async def test_a_service_that_reserialises_json_fails_with_cid_mismatch() -> None:
    with FakePinata(token=JWT, reserialize_json=True) as pinata:
        async with _legacy(pinata) as pinner:
            with pytest.raises(CIDMismatch) as caught:
                await pinner.pin(METADATA, content_type="application/json")
    assert caught.value.expected == cid_for_bytes(METADATA)
    assert caught.value.code == "cid_mismatch"


async def test_bad_credentials_are_rejected_without_retrying(pinata: FakePinata) -> None:
    async with PinataPinner("wrong", api_url=pinata.url, policy=FAST) as pinner:
        with pytest.raises(PinningRejected, match="INVALID_CREDENTIALS") as caught:
            await pinner.pin(PNG, content_type="image/png")
    assert caught.value.status_code == 401
    assert len(pinata.requests) == 1


async def test_rate_limits_and_server_errors_are_retried(pinata: FakePinata) -> None:
    pinata.trouble.extend([429, 500])
    async with _legacy(pinata) as pinner:
        cid = await pinner.pin(PNG, content_type="image/png")
    assert cid in pinata.files
    assert len(pinata.calls("/pinning/pinFileToIPFS")) == 3


async def test_a_stalled_upload_hits_the_pin_timeout(pinata: FakePinata) -> None:
    pinata.stall_all_s = 10
    started = time.monotonic()
    async with PinataPinner(JWT, api_url=pinata.url, policy=WaitPolicy(timeout_s=0.5, retries=0)) as pinner:
        with pytest.raises(PinTimeout):
            await pinner.pin(PNG, content_type="image/png")
    assert time.monotonic() - started < 3


async def test_get_without_a_gateway_is_none_and_with_one_is_verified(pinata: FakePinata) -> None:
    async with PinataPinner(JWT, api_url=pinata.url, policy=FAST) as pinner:
        cid = await pinner.pin(PNG, content_type="image/png")
        assert await pinner.get(cid) is None
    async with _legacy(pinata) as pinner:
        assert await pinner.get(cid_for_bytes(b"absent")) is None
        pinata.files[cid] = (b"tampered", "image/png")
        with pytest.raises(CIDMismatch):
            await pinner.get(cid)
