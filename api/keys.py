"""API keys: shown once, stored as a SHA-256 digest, scoped, limited to collections, revocable.

The key itself carries 256 bits of randomness, so a plain SHA-256 is the right hash (a slow
password hash would add latency to every request and no security). Two records per key:
`pm:apikey:<digest>` (what a request looks up; deleted on revoke) and the `pm:apikeys` index
keyed by key id (what `keys list` shows; keeps revoked keys for audit).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from jobs.ids import check_tenant
from jobs.keys import API_KEY_INDEX_KEY, api_key_key

KEY_PREFIX = "pm_"
SESSION_PREFIX = "pms_"
SCOPES = ("mint", "preview", "read")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """What is stored about a key; never the key itself."""

    key_id: str
    tenant: str
    scopes: tuple[str, ...] = SCOPES
    collections: tuple[str, ...] | None = None  # None: every collection
    name: str = ""
    created_at: float = field(default_factory=time.time)
    rate_per_min: int | None = None  # None: the service default
    burst: int | None = None
    revoked_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ApiKeyRecord:
        data: dict[str, Any] = json.loads(raw)
        data.pop("digest", None)
        data["scopes"] = tuple(data.get("scopes") or ())
        if data.get("collections") is not None:
            data["collections"] = tuple(data["collections"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def check_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {', '.join(scopes)}")
    return tuple(s for s in SCOPES if s in scopes)


class KeyStore:
    """Create, look up, list and revoke API keys."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def create(
        self,
        tenant: str,
        *,
        scopes: tuple[str, ...] = SCOPES,
        collections: tuple[str, ...] | None = None,
        name: str = "",
        rate_per_min: int | None = None,
        burst: int | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """Returns (record, api_key); only the digest is stored, the key is shown once."""
        check_tenant(tenant)  # ValueError: a safe charset and length, never a wallet session's space
        key_id = secrets.token_hex(6)
        api_key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKeyRecord(
            key_id=key_id,
            tenant=tenant,
            scopes=check_scopes(scopes),
            collections=tuple(collections) if collections is not None else None,
            name=name,
            rate_per_min=rate_per_min,
            burst=burst,
        )
        secret_digest = digest(api_key)
        indexed = {**asdict(record), "digest": secret_digest}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(api_key_key(secret_digest), record.to_json())
            pipe.hset(API_KEY_INDEX_KEY, key_id, json.dumps(indexed, sort_keys=True))
            await pipe.execute()
        return record, api_key

    async def lookup(self, api_key: str) -> ApiKeyRecord | None:
        raw = await self.redis.get(api_key_key(digest(api_key)))
        return ApiKeyRecord.from_json(raw) if raw is not None else None

    async def list(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        raw = await self.redis.hgetall(API_KEY_INDEX_KEY)
        records = [ApiKeyRecord.from_json(value) for value in raw.values()]
        if tenant is not None:
            records = [r for r in records if r.tenant == tenant]
        return sorted(records, key=lambda r: r.created_at)

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """The key stops working at once (its digest record is deleted); the index keeps the audit trail."""
        raw = await self.redis.hget(API_KEY_INDEX_KEY, key_id)
        if raw is None:
            return None
        indexed = json.loads(raw)
        if indexed.get("revoked_at") is None:
            indexed["revoked_at"] = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(api_key_key(indexed["digest"]))
            pipe.hset(API_KEY_INDEX_KEY, key_id, json.dumps(indexed, sort_keys=True))
            await pipe.execute()
        return ApiKeyRecord.from_json(json.dumps(indexed))


async def create_api_key(
    redis: Redis,
    tenant: str,
    *,
    scopes: tuple[str, ...] = SCOPES,
    collections: tuple[str, ...] | None = None,
    name: str = "",
    rate_per_min: int | None = None,
    burst: int | None = None,
) -> tuple[str, str]:
    """Returns (key_id, api_key); only the hash is stored, the key is shown once. Defaults: every scope."""
    record, api_key = await KeyStore(redis).create(
        tenant, scopes=scopes, collections=collections, name=name, rate_per_min=rate_per_min, burst=burst
    )
    return record.key_id, api_key
