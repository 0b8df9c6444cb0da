"""The pinning contract: wait policy, retry classification, and validation of service answers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs.cid import cid_for_bytes
from ipfs.pinning import (
    CIDMismatch,
    PinningError,
    PinningRejected,
    PinningResponseError,
    PinningUnavailable,
    WaitPolicy,
    canonical_cid,
    send_with_retries,
    sniff_content_type,
)
from ipfs.pinning.pinning_service import parse_pin_status

CID = cid_for_bytes(b"token")
FAST = WaitPolicy(retries=2, backoff_s=0)


def test_wait_policy_accepts() -> None:
    strict, lenient = WaitPolicy(), WaitPolicy(accept="queued")
    assert [strict.accepts(s) for s in ("queued", "pinning", "pinned", "failed")] == [False, False, True, False]
    assert [lenient.accepts(s) for s in ("queued", "pinning", "pinned", "failed")] == [True, True, True, False]


@pytest.mark.parametrize(
    "kwargs",
    [{"accept": "maybe"}, {"timeout_s": 0}, {"retries": -1}, {"poll_s": 5, "max_poll_s": 1}, {"request_timeout_s": 0}],
)
def test_wait_policy_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WaitPolicy(**kwargs)


def test_cid_mismatch_names_the_service_and_the_likely_cause() -> None:
    error = CIDMismatch("bafyexpected", "Qmactual", service="kubo")
    assert error.code == "cid_mismatch"
    assert "kubo" in str(error)
    assert "chunker" in str(error)
    assert "bafyexpected" in str(error)
    assert str(CIDMismatch("a", "b")) == "content under a hashes to b"  # the LocalStore wording


def _client(statuses: list[int | str]) -> tuple[httpx.AsyncClient, list[int]]:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        status = statuses.pop(0) if statuses else 200
        if status == "connect":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(int(status), json={"error": {"reason": f"r{status}"}})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


async def _send(client: httpx.AsyncClient, **kwargs: Any) -> httpx.Response:
    return await send_with_retries(
        client, "GET", "http://svc/x", service="svc", policy=FAST, describe_error=lambda r: r.text, **kwargs
    )


async def test_transient_failures_are_retried_until_success() -> None:
    client, seen = _client(["connect", 429])
    assert (await _send(client)).status_code == 200
    assert len(seen) == 3


async def test_retries_are_bounded() -> None:
    client, seen = _client([503, 503, 503, 503])
    with pytest.raises(PinningUnavailable, match="after 3 attempts"):
        await _send(client)
    assert len(seen) == 3


async def test_client_errors_are_final() -> None:
    client, seen = _client([401])
    with pytest.raises(PinningRejected) as caught:
        await _send(client)
    assert caught.value.status_code == 401
    assert len(seen) == 1


async def test_a_custom_transient_rule_decides() -> None:
    client, seen = _client([500])
    with pytest.raises(PinningRejected):
        await _send(client, transient=lambda r: False)
    assert len(seen) == 1


def test_canonical_cid_normalises_and_refuses() -> None:
    with pytest.raises(PinningResponseError):
        canonical_cid("z123456789", service="svc")
    with pytest.raises(PinningResponseError):
        canonical_cid(None, service="svc")
    assert canonical_cid(CID, service="svc") == CID


def test_sniff_content_type() -> None:
    assert sniff_content_type(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert sniff_content_type(b'{"a":1}') == "application/json"
    assert sniff_content_type(b"GIF89a") == "application/octet-stream"


def _status(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestid": "req-1",
        "status": "pinned",
        "created": "2025-01-01T00:00:00Z",
        "pin": {"cid": CID},
        "delegates": ["/dns4/x/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ"],
    }
    body.update(overrides)
    return body


def test_a_valid_status_parses() -> None:
    parsed = parse_pin_status(_status(info={"status_details": "ok"}), expected_cid=CID, service="svc")
    assert (parsed.requestid, parsed.status, parsed.cid) == ("req-1", "pinned", CID)
    assert parsed.info == {"status_details": "ok"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"requestid": ""}, "requestid"),
        ({"status": "done"}, "unknown status"),
        ({"pin": {}}, "names no CID"),
        ({"pin": {"cid": "bafkqaaa"}}, "invalid CID"),
        ({"pin": {"cid": cid_for_bytes(b"other")}}, "is for"),
        ({"delegates": "x"}, "delegates"),
        ({"info": ["x"]}, "info"),
    ],
)
def test_an_invalid_status_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(PinningResponseError, match=message):
        parse_pin_status(_status(**overrides), expected_cid=CID, service="svc")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    body=st.one_of(
        _json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "requestid": _json_values,
                "status": st.sampled_from(["queued", "pinning", "pinned", "failed", "x"]) | _json_values,
                "pin": st.fixed_dictionaries({}, optional={"cid": st.just(CID) | _json_values}) | _json_values,
                "delegates": st.lists(st.text(max_size=8), max_size=3) | _json_values,
                "info": _json_values,
            },
        ),
    )
)
def test_any_json_either_parses_as_our_cid_or_is_a_pinning_error(body: Any) -> None:
    # Round-trip through JSON so only what a service could really send is tried.
    body = json.loads(json.dumps(body))
    try:
        parsed = parse_pin_status(body, expected_cid=CID, service="svc")
    except PinningError:
        return
    assert parsed.cid == CID
    assert parsed.status in ("queued", "pinning", "pinned", "failed")
