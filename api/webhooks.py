"""Webhooks both ways: signed reward events in (→ mints), signed status events out (retried, dead-lettered).

Signature scheme, the same both ways: `X-PersonaMint-Timestamp: <unix seconds>` and
`X-PersonaMint-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>` (several
`v1=` values, comma-separated, while a secret rotates). The timestamp is inside the MAC, so a
captured request cannot be replayed later than the tolerance window; within it, event ids are
deduplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from api.errors import ApiError
from api.jobs import Job, JobStore
from api.logging import job_context
from api.settings import WebhookSource

log = logging.getLogger("personamint.webhooks")

SIGNATURE_HEADER = "X-PersonaMint-Signature"
TIMESTAMP_HEADER = "X-PersonaMint-Timestamp"
EVENT_ID_HEADER = "X-PersonaMint-Event-Id"
INBOUND_DEDUP_TTL_S = 7 * 24 * 3600
DELIVERY_RECORD_TTL_S = 30 * 24 * 3600
MAX_EVENT_ID = 200


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


def signature_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"v1={sign(secret, stamp, body)}"}


def verify_signature(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, *, tolerance_s: int, now: float
) -> None:
    """Raise a 401 problem unless the MAC matches and the timestamp is inside the window."""
    if not timestamp or not signature:
        raise ApiError(401, "missing_signature", f"send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise ApiError(401, "invalid_signature", f"{TIMESTAMP_HEADER} must be unix seconds")
    expected = sign(secret, timestamp, body)
    candidates = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    # Compare every candidate (constant time each) so timing says nothing about which matched.
    matched = False
    for candidate in candidates[:8]:
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    if not matched:
        raise ApiError(401, "invalid_signature", "the signature does not match the body and timestamp")
    if abs(now - int(timestamp)) > tolerance_s:
        raise ApiError(401, "stale_timestamp", f"the timestamp is outside the {tolerance_s} s window")


def json_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 lookup; None where the path does not exist."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        return None
    node = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


@dataclass(frozen=True)
class InboundEvent:
    """A verified event that maps to a mint."""

    event_id: str
    event_type: str
    mapped: bool  # False: a type this source does not turn into mints (acknowledged, ignored)
    recipient: Any = None
    collection: str = ""
    context: dict[str, Any] | None = None


def parse_inbound(source: WebhookSource, body: bytes) -> InboundEvent:
    """The verified body → the mint it asks for."""
    try:
        event = json.loads(body)
    except ValueError:
        raise ApiError(400, "invalid_json", "the webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise ApiError(400, "invalid_webhook_event", "the webhook body must be a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID or not event_id.isprintable():
        raise ApiError(400, "invalid_webhook_event", "the event needs an 'id' string (1-200 characters)")
    if not isinstance(event_type, str):
        raise ApiError(400, "invalid_webhook_event", "the event needs a 'type' string")
    mapping = source.events.get(event_type)
    if mapping is None:
        return InboundEvent(event_id, event_type, mapped=False)
    recipient = json_pointer(event, mapping.recipient)
    context = json_pointer(event, mapping.context) if mapping.context else None
    if context is not None and not isinstance(context, dict):
        raise ApiError(400, "invalid_webhook_event", f"{mapping.context} must be an object")
    return InboundEvent(event_id, event_type, True, recipient, mapping.collection, context or {})


def inbound_dedup_key(source: str, event_id: str) -> str:
    return f"pm:whin:{source}:{hashlib.sha256(event_id.encode()).hexdigest()}"


# ---------------------------------------------------------------------------------------------
# Outbound: tenant endpoints, the outbox (scheduled by JobStore.set_status), the delivery loop.


def endpoint_key(tenant: str) -> str:
    return f"pm:tenant:{tenant}:webhook"


async def set_endpoint(redis: Redis, tenant: str, url: str, secret: str | None = None) -> str:
    """Register where a tenant's status webhooks go; returns the signing secret (shown once)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("a webhook URL must be http(s)")
    secret = secret or f"whsec_{secrets.token_urlsafe(24)}"
    await redis.set(endpoint_key(tenant), json.dumps({"url": url, "secret": secret}))
    return secret


async def remove_endpoint(redis: Redis, tenant: str) -> None:
    await redis.delete(endpoint_key(tenant))


def delivery_key(delivery_id: str) -> str:
    return f"pm:whout:{delivery_id}"


DUE_KEY = "pm:whout:due"

# Take up to N due deliveries and push each one's due time past the lease, so another delivery
# loop does not take it meanwhile; a loop that dies mid-delivery leaves it due again later.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    max_s: float
    timeout_s: float

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with equal jitter; a receiver's Retry-After is honoured when longer."""
        ceiling = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        delay: float = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_s))
        return delay


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def status_payload(job: Job, event_id: str, event_type: str, created_at: float) -> dict[str, Any]:
    """What a receiver gets: the end state of one mint, without internals."""
    mint: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "recipient": job.recipient,
        "collection": job.collection,
        "edition": job.edition,
        "request_id": job.request_id,
    }
    if pin := job.stages.get("pin"):
        mint["token_uri"] = pin["token_uri"]
        mint["image_uri"] = pin["image_uri"]
    if minted := job.stages.get("mint"):
        mint.update({k: minted[k] for k in ("token_id", "tx_hash", "contract", "chain_id") if k in minted})
    if job.error:
        mint["error"] = {"code": job.error.get("code", "internal_error"), "message": job.error.get("message", "")}
    return {"id": event_id, "type": event_type, "created_at": created_at, "data": {"mint": mint}}


def _decoded(raw: Any) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


class DeliveryStore:
    """Reads and admin actions on outbound deliveries (what the API shows)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, delivery_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(delivery_key(delivery_id))
        if not raw:
            return None
        record: dict[str, Any] = _decoded(raw)
        attempts = await self.redis.lrange(f"{delivery_key(delivery_id)}:attempts", 0, -1)
        record["history"] = [json.loads(a) for a in attempts]
        return record

    async def list(self, tenant: str, state: str | None, limit: int) -> list[dict[str, Any]]:
        ids: Any = await self.redis.zrevrange(f"pm:whout:tenant:{tenant}", 0, 999)
        found: list[dict[str, Any]] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(delivery_key(delivery_id.decode()))
            rows = await pipe.execute()
        for raw in rows:
            if not raw:
                continue
            record = _decoded(raw)
            if state is None or record.get("state") == state:
                found.append(record)
            if len(found) >= limit:
                break
        return found

    async def redeliver(self, delivery_id: str) -> None:
        """A dead letter goes back to the outbox with a fresh try budget."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(delivery_key(delivery_id), mapping={"state": "pending", "attempts": "0", "next_at": repr(now)})
            pipe.persist(delivery_key(delivery_id))
            pipe.zadd(DUE_KEY, {delivery_id: now})
            await pipe.execute()


class WebhookDeliverer:
    """The outbound loop: claim due deliveries, POST them signed, record the outcome, back off or dead-letter."""

    def __init__(
        self,
        redis: Redis,
        jobs: JobStore,
        policy: RetryPolicy,
        *,
        poll_s: float = 0.5,
        batch: int = 16,
        client: httpx.AsyncClient | None = None,
        on_outcome: Any = None,
    ) -> None:
        self.redis = redis
        self.jobs = jobs
        self.policy = policy
        self.poll_s = poll_s
        self.batch = batch
        self._client = client or httpx.AsyncClient(timeout=policy.timeout_s, trust_env=False)
        self._claim = redis.register_script(_CLAIM)
        self._stop = asyncio.Event()
        self._on_outcome = on_outcome or (lambda outcome: None)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - Redis away: keep the loop alive and try again
                log.warning("webhook delivery loop: %s", type(exc).__name__)
                delivered = 0
            if delivered == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_s)

    async def stop(self) -> None:
        self._stop.set()
        await self._client.aclose()

    async def run_once(self) -> int:
        now = time.time()
        lease_until = now + self.policy.timeout_s + 5
        claimed = await self._claim(keys=[DUE_KEY], args=[repr(now), repr(lease_until), self.batch])
        if not claimed:
            return 0
        await asyncio.gather(*(self.deliver(raw.decode()) for raw in claimed))
        return len(claimed)

    async def deliver(self, delivery_id: str) -> str:
        key = delivery_key(delivery_id)
        record = _decoded(await self.redis.hgetall(key))
        if record.get("state") != "pending":
            await self.redis.zrem(DUE_KEY, delivery_id)
            return record.get("state", "missing")
        with job_context(record["job_id"]):
            return await self._attempt(delivery_id, record)

    async def _attempt(self, delivery_id: str, record: dict[str, str]) -> str:
        key = delivery_key(delivery_id)
        endpoint_raw = await self.redis.get(endpoint_key(record["tenant"]))
        if endpoint_raw is None:
            return await self._finish(delivery_id, record, "dead", None, "the tenant has no webhook endpoint", 0.0)
        endpoint = json.loads(endpoint_raw)
        payload = record.get("payload")
        if payload is None:
            job = await self.jobs.get(record["job_id"])
            if job is None:
                return await self._finish(delivery_id, record, "dead", None, "the job no longer exists", 0.0)
            # Built once and kept, so every retry sends the same bytes (and the same signature input).
            payload = json.dumps(
                status_payload(job, record["event_id"], record["type"], float(record["created_at"])),
                sort_keys=True,
                separators=(",", ":"),
            )
            await self.redis.hset(key, "payload", payload)
        body = payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PersonaMint-Webhooks/1",
            EVENT_ID_HEADER: record["event_id"],
            **signature_headers(endpoint["secret"], body),
        }
        started = time.perf_counter()
        try:
            response = await self._client.post(endpoint["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            seconds = time.perf_counter() - started
            return await self._finish(delivery_id, record, "retry", None, type(exc).__name__, seconds)
        seconds = time.perf_counter() - started
        status = response.status_code
        if 200 <= status < 300:
            return await self._finish(delivery_id, record, "delivered", status, None, seconds)
        if status == 429 or status >= 500:
            return await self._finish(
                delivery_id, record, "retry", status, f"HTTP {status}", seconds, _retry_after(response)
            )
        return await self._finish(delivery_id, record, "dead", status, f"HTTP {status} (not retried)", seconds)

    async def _finish(
        self,
        delivery_id: str,
        record: dict[str, str],
        outcome: str,
        status: int | None,
        error: str | None,
        seconds: float,
        retry_after: float | None = None,
    ) -> str:
        key = delivery_key(delivery_id)
        attempts = int(record.get("attempts", "0")) + 1
        now = time.time()
        state = outcome
        if outcome == "retry" and attempts >= self.policy.max_attempts:
            state = "dead"
            error = f"{error}; gave up after {attempts} tries"
        fields: dict[Any, Any] = {"attempts": str(attempts), "last_attempt_at": repr(now)}
        if status is not None:
            fields["last_status"] = str(status)
        if error is not None:
            fields["last_error"] = error
        history = {"at": now, "status": status, "error": error, "seconds": round(seconds, 4)}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(f"{key}:attempts", json.dumps(history))
            pipe.ltrim(f"{key}:attempts", -100, -1)
            if state == "retry":
                next_at = now + self.policy.delay(attempts, retry_after)
                fields.update(state="pending", next_at=repr(next_at))
                pipe.hset(key, mapping=fields)
                pipe.zadd(DUE_KEY, {delivery_id: next_at})
            else:
                fields["state"] = state
                if state == "delivered":
                    fields["delivered_at"] = repr(now)
                pipe.hset(key, mapping=fields)
                pipe.zrem(DUE_KEY, delivery_id)
                pipe.expire(key, DELIVERY_RECORD_TTL_S)
                pipe.expire(f"{key}:attempts", DELIVERY_RECORD_TTL_S)
            await pipe.execute()
        if state == "dead":
            log.warning("webhook %s dead-lettered after %d tries: %s", delivery_id, attempts, error)
        self._on_outcome(state)
        return state
