"""A job's derived identities: the seed its art comes from and the request id its mint is keyed by."""

from __future__ import annotations

import hashlib

from eth_utils.crypto import keccak


def derive_seed(collection: str, recipient: str, edition: int) -> int:
    """seed = hash(collection, recipient, edition): previews show exactly the next mint."""
    digest = hashlib.sha256(f"{collection}:{recipient.lower()}:{edition}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def derive_request_id(tenant: str, idempotency_key: str | None, job_id: str) -> bytes:
    """The on-chain requestId: keyed requests collapse to one token whatever happens."""
    if idempotency_key is not None:
        return keccak(f"tenant:{tenant}:key:{idempotency_key}".encode())
    return keccak(f"job:{job_id}".encode())
