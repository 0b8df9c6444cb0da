"""API keys: stored hashed in Redis, each belonging to a tenant that survives key rotation."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from api.errors import ApiError

KEY_PREFIX = "pm_"


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: str


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_api_key(redis: Redis, tenant: str) -> tuple[str, str]:
    """Returns (key_id, api_key); only the hash is stored, the key is shown once."""
    key_id = secrets.token_hex(6)
    api_key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = {"tenant": tenant, "key_id": key_id, "created_at": time.time()}
    await redis.set(f"pm:apikey:{_digest(api_key)}", json.dumps(record))
    return key_id, api_key


async def authenticate(redis: Redis, authorization: str | None) -> Caller:
    if not authorization:
        raise ApiError(401, "missing_api_key", "Send 'Authorization: Bearer <api key>'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200:
        raise ApiError(401, "invalid_api_key", "The API key is not valid.")
    raw = await redis.get(f"pm:apikey:{_digest(token)}")
    if raw is None:
        raise ApiError(401, "invalid_api_key", "The API key is not valid.")
    record = json.loads(raw)
    return Caller(tenant=record["tenant"], key_id=record["key_id"])
