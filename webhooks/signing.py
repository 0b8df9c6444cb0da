"""The one HMAC scheme for everything the service signs outbound (and checks inbound)."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-PersonaMint-Signature"


TIMESTAMP_HEADER = "X-PersonaMint-Timestamp"


EVENT_ID_HEADER = "X-PersonaMint-Event-Id"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


def signature_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"v1={sign(secret, stamp, body)}"}
