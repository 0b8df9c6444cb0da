"""The webhook outbox: tenants' endpoints, each delivery's record and attempts, the due set.

A delivery is written by the status script (`jobs/scripts/set_status.lua`) in the same step as
the end state it announces (a transactional outbox); the deliverer claims due ones
(`outbox_claim.lua`) and the API lists, shows and redelivers them.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobs import keys, lua
from webhooks.egress import EgressPolicy

log = logging.getLogger("personamint.webhooks")


DELIVERY_RECORD_TTL_S = 30 * 24 * 3600


async def set_endpoint(
    redis: Redis, tenant: str, url: str, secret: str | None = None, *, allow_loopback: bool = False
) -> str:
    """Register where a tenant's status webhooks go; returns the signing secret (shown once).

    The URL passes the egress policy first (`webhooks.egress`: no internal or metadata address in
    any spelling); refused, it raises `EgressRefused` (a ValueError) and nothing is stored.
    """
    EgressPolicy(allow_loopback=allow_loopback).check_url(url)
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


@dataclass(frozen=True)
class DeliveryAttemptRecord:
    """One try at delivering: when, the receiver's HTTP status or the error, how long it took."""

    at: float
    status: int | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class DeliveryRecord:
    """An outbound delivery as stored (`pm:whout:<id>`), with its attempts when they were read."""

    id: str
    tenant: str
    job_id: str
    type: str
    event_id: str
    state: str  # pending | delivered | dead
    attempts: int
    created_at: float
    next_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    history: tuple[DeliveryAttemptRecord, ...] | None = None

    @classmethod
    def from_hash(cls, fields: dict[str, str], history: list[bytes] | None = None) -> DeliveryRecord:
        def number(name: str) -> float | None:
            value = fields.get(name)
            return float(value) if value else None

        return cls(
            id=fields["id"],
            tenant=fields["tenant"],
            job_id=fields["job_id"],
            type=fields["type"],
            event_id=fields["event_id"],
            state=fields["state"],
            attempts=int(fields.get("attempts", 0)),
            created_at=float(fields["created_at"]),
            next_at=number("next_at"),
            last_status=int(fields["last_status"]) if fields.get("last_status") else None,
            last_error=fields.get("last_error"),
            delivered_at=number("delivered_at"),
            history=None if history is None else tuple(DeliveryAttemptRecord(**json.loads(a)) for a in history),
        )


class DeliveryStore:
    """Reads and admin actions on outbound deliveries (what the API shows)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        raw = await self.redis.hgetall(keys.delivery_key(delivery_id))
        if not raw:
            return None
        attempts: Any = await self.redis.lrange(keys.delivery_attempts_key(delivery_id), 0, -1)
        return DeliveryRecord.from_hash(decoded(raw), attempts)

    async def list(self, tenant: str, state: str | None, limit: int) -> list[DeliveryRecord]:
        ids: Any = await self.redis.zrevrange(keys.tenant_deliveries_key(tenant), 0, 999)
        found: list[DeliveryRecord] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(keys.delivery_key(delivery_id.decode()))
            rows = await pipe.execute()
        for raw in rows:
            if not raw:
                continue
            record = DeliveryRecord.from_hash(decoded(raw))
            if state is None or record.state == state:
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
