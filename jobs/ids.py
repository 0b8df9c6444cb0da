"""A job's derived identities: the seed its art comes from, the request id its mint is keyed by,
and the one canonical encoding every other derived id is hashed from.

Every id derived from caller-chosen text (tenant, Idempotency-Key, operation) hashes a canonical
preimage: a domain-separation tag, then each field length-prefixed, so no two different field
lists can spell the same bytes (`acme` + `x:key:k1` and `acme:key:x` + `k1` stay apart).
`derive_seed` is the one exception, on purpose: the art of every minted token depends on it and a
preview must show exactly the next mint, so its preimage is frozen as it is.
"""

from __future__ import annotations

import hashlib
import re

from eth_utils.crypto import keccak

_DOMAIN = b"personamint/v1"

# An operator-named tenant (API keys, inbound webhook sources): lower-case letters, digits and
# `._-`, starting with a letter or digit, at most 64 characters. A SIWE session's tenant is
# `wallet:<checksummed address>` (WALLET_TENANT_PREFIX); the colon keeps the two spaces apart.
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
WALLET_TENANT_PREFIX = "wallet:"
_WALLET_TENANT = re.compile(r"wallet:0x[0-9a-fA-F]{40}")


def canonical_preimage(tag: str, *fields: str) -> bytes:
    """`tag` and `fields`, each as a 4-byte big-endian length then its UTF-8 bytes, after the domain."""
    parts = [_DOMAIN]
    for value in (tag, *fields):
        encoded = value.encode()
        parts.append(len(encoded).to_bytes(4, "big") + encoded)
    return b"".join(parts)


def canonical_digest(tag: str, *fields: str) -> str:
    """sha256 (hex) of the canonical preimage: for ids that live in Redis key names."""
    return hashlib.sha256(canonical_preimage(tag, *fields)).hexdigest()


def check_tenant(tenant: str) -> str:
    """An operator-named tenant as given, or ValueError saying what a tenant name may be."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(
            "a tenant name is 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )
    return tenant


def wallet_tenant(address: str) -> str:
    """A SIWE session's tenant: its wallet's own space, never an operator-named tenant's."""
    tenant = WALLET_TENANT_PREFIX + address
    if not _WALLET_TENANT.fullmatch(tenant):
        raise ValueError("a wallet tenant needs a 0x address")
    return tenant


def is_tenant(tenant: str) -> bool:
    """Whether `tenant` is an operator-named tenant or a wallet session's."""
    return bool(TENANT_PATTERN.fullmatch(tenant) or _WALLET_TENANT.fullmatch(tenant))


def derive_seed(collection: str, recipient: str, edition: int) -> int:
    """seed = hash(collection, recipient, edition): previews show exactly the next mint.

    Frozen: every minted token's art was rendered from this preimage (see the module docstring).
    """
    digest = hashlib.sha256(f"{collection}:{recipient.lower()}:{edition}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def derive_request_id(tenant: str, idempotency_key: str | None, body_hash: str, job_id: str) -> bytes:
    """The on-chain requestId: a retried request collapses to one token whatever happens.

    A keyed request's id covers the tenant, the key and the request body's hash: the same request
    sent again (even after its 24 h idempotency record expired) keeps its id, so it never mints
    twice; the same key with another body can never reach the first body's token.
    """
    if idempotency_key is not None:
        return keccak(canonical_preimage("request-id/keyed", tenant, idempotency_key, body_hash))
    return keccak(canonical_preimage("request-id/job", job_id))
