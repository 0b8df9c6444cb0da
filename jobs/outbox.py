"""Webhooks both ways: signed reward events in (→ mints), signed status events out (retried, dead-lettered).

Signature scheme, the same both ways: `X-PersonaMint-Timestamp: <unix seconds>` and
`X-PersonaMint-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>` (several
`v1=` values, comma-separated, while a secret rotates). The timestamp is inside the MAC, so a
captured request cannot be replayed later than the tolerance window; within it, event ids are
deduplicated."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from redis.asyncio import Redis

from jobs import keys, lua

log = logging.getLogger("personamint.webhooks")


DELIVERY_RECORD_TTL_S = 30 * 24 * 3600


async def set_endpoint(redis: Redis, tenant: str, url: str, secret: str | None = None) -> str:
    """Register where a tenant's status webhooks go; returns the signing secret (shown once)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("a webhook URL must be http(s)")
    secret = secret or f"whsec_{secrets.token_urlsafe(24)}"
    await redis.set(keys.webhook_endpoint_key(tenant), json.dumps({"url": url, "secret": secret}))
    return secret


async def remove_endpoint(redis: Redis, tenant: str) -> None:
    await redis.delete(keys.webhook_endpoint_key(tenant))


class DueDeliveries:
    """The outbox's due side, for delivery loops: several may run, each claims its own deliveries."""

    def __init__(self, redis: Redis) -> None:
        self._claim = lua.register(redis, "outbox_claim")

    async def claim(self, *, now: float, lease_until: float, batch: int) -> list[str]:
        """Take up to `batch` due delivery ids; each falls due again at `lease_until` unless finished."""
        claimed: Any = await self._claim(keys=[keys.DELIVERIES_DUE_KEY], args=[repr(now), repr(lease_until), batch])
        return [raw.decode() for raw in claimed]


def decoded(raw: Any) -> dict[str, str]:
    """A delivery hash (HGETALL) as strings."""
    return {k.decode(): v.decode() for k, v in raw.items()}


class DeliveryStore:
    """Reads and admin actions on outbound deliveries (what the API shows)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, delivery_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(keys.delivery_key(delivery_id))
        if not raw:
            return None
        record: dict[str, Any] = decoded(raw)
        attempts = await self.redis.lrange(keys.delivery_attempts_key(delivery_id), 0, -1)
        record["history"] = [json.loads(a) for a in attempts]
        return record

    async def list(self, tenant: str, state: str | None, limit: int) -> list[dict[str, Any]]:
        ids: Any = await self.redis.zrevrange(keys.tenant_deliveries_key(tenant), 0, 999)
        found: list[dict[str, Any]] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(keys.delivery_key(delivery_id.decode()))
            rows = await pipe.execute()
        for raw in rows:
            if not raw:
                continue
            record = decoded(raw)
            if state is None or record.get("state") == state:
                found.append(record)
            if len(found) >= limit:
                break
        return found

    async def redeliver(self, delivery_id: str) -> None:
        """A dead letter goes back to the outbox with a fresh try budget."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.delivery_key(delivery_id), mapping={"state": "pending", "attempts": "0", "next_at": repr(now)}
            )
            pipe.persist(keys.delivery_key(delivery_id))
            pipe.zadd(keys.DELIVERIES_DUE_KEY, {delivery_id: now})
            await pipe.execute()
