"""Webhook signing and verification, JSON pointers, and the retry schedule: pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.errors import ApiError
from api.inbound import json_pointer, verify_signature
from processes.webhook_deliverer import RetryPolicy
from webhooks.signing import sign, signature_headers

SECRET = "whsec_unit"


def refused(code: str, **kwargs: object) -> None:
    arguments: dict[str, object] = {
        "secret": SECRET,
        "timestamp": "1000",
        "signature": "v1=" + sign(SECRET, "1000", b"{}"),
        "body": b"{}",
        "tolerance_s": 300,
        "now": 1000.0,
    }
    arguments.update(kwargs)
    with pytest.raises(ApiError) as caught:
        verify_signature(**arguments)  # type: ignore[arg-type]
    assert caught.value.code == code
    assert caught.value.status == 401


@given(body=st.binary(max_size=512), stamp=st.integers(min_value=0, max_value=10**12 - 1))
def test_signed_bodies_verify_and_any_change_fails(body: bytes, stamp: int) -> None:
    headers = signature_headers(SECRET, body, timestamp=stamp)
    timestamp, signature = headers["X-PersonaMint-Timestamp"], headers["X-PersonaMint-Signature"]
    verify_signature(SECRET, timestamp, signature, body, tolerance_s=300, now=float(stamp))
    with pytest.raises(ApiError):
        verify_signature(SECRET, timestamp, signature, body + b"x", tolerance_s=300, now=float(stamp))
    with pytest.raises(ApiError):
        verify_signature(SECRET, str(stamp + 1), signature, body, tolerance_s=300, now=float(stamp))


def test_refusals() -> None:
    refused("missing_signature", timestamp=None)
    refused("missing_signature", signature="")
    refused("invalid_signature", timestamp="12a")
    refused("invalid_signature", signature="v1=deadbeef")
    refused("invalid_signature", signature="v0=" + sign(SECRET, "1000", b"{}"))
    refused("invalid_signature", secret="whsec_other")
    refused("stale_timestamp", now=1000.0 + 301)
    refused("stale_timestamp", now=1000.0 - 301)
    # During a secret rotation the sender may send both signatures.
    both = f"v1={sign('whsec_old', '1000', b'{}')},v1={sign(SECRET, '1000', b'{}')}"
    verify_signature(SECRET, "1000", both, b"{}", tolerance_s=300, now=1000.0)


def test_json_pointer() -> None:
    document = {"data": {"wallet": "0xabc", "a/b": 1, "m~n": 2, "list": [10, 20]}}
    assert json_pointer(document, "/data/wallet") == "0xabc"
    assert json_pointer(document, "/data/a~1b") == 1
    assert json_pointer(document, "/data/m~0n") == 2
    assert json_pointer(document, "/data/list/1") == 20
    assert json_pointer(document, "/data/list/9") is None
    assert json_pointer(document, "/nope") is None
    assert json_pointer(document, "data") is None
    assert json_pointer(document, "") == document


@given(attempt=st.integers(min_value=1, max_value=40))
def test_backoff_is_exponential_jittered_and_capped(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=8, base_s=2.0, max_s=600.0, timeout_s=10.0)
    ceiling = min(600.0, 2.0 * 2 ** (attempt - 1))
    delay = policy.delay(attempt)
    assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(attempt, retry_after=30.0) >= min(30.0, 600.0)
