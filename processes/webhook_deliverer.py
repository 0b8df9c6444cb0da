"""The webhook deliverer: sends due outbox deliveries, retried with backoff, dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from jobs.keys import DELIVERIES_DUE_KEY, delivery_attempts_key, delivery_key, webhook_endpoint_key
from jobs.outbox import DELIVERY_RECORD_TTL_S, DueDeliveries, decoded
from jobs.store import JobStore
from observability.logging import job_context
from webhooks.payloads import status_payload
from webhooks.signing import EVENT_ID_HEADER, signature_headers

log = logging.getLogger("personamint.webhooks")


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
        self._due = DueDeliveries(redis)
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
        claimed = await self._due.claim(now=now, lease_until=lease_until, batch=self.batch)
        if not claimed:
            return 0
        await asyncio.gather(*(self.deliver(delivery_id) for delivery_id in claimed))
        return len(claimed)

    async def deliver(self, delivery_id: str) -> str:
        key = delivery_key(delivery_id)
        record = decoded(await self.redis.hgetall(key))
        if record.get("state") != "pending":
            await self.redis.zrem(DELIVERIES_DUE_KEY, delivery_id)
            return record.get("state", "missing")
        with job_context(record["job_id"]):
            return await self._attempt(delivery_id, record)

    async def _attempt(self, delivery_id: str, record: dict[str, str]) -> str:
        key = delivery_key(delivery_id)
        endpoint_raw = await self.redis.get(webhook_endpoint_key(record["tenant"]))
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
            pipe.rpush(delivery_attempts_key(delivery_id), json.dumps(history))
            pipe.ltrim(delivery_attempts_key(delivery_id), -100, -1)
            if state == "retry":
                next_at = now + self.policy.delay(attempts, retry_after)
                fields.update(state="pending", next_at=repr(next_at))
                pipe.hset(key, mapping=fields)
                pipe.zadd(DELIVERIES_DUE_KEY, {delivery_id: next_at})
            else:
                fields["state"] = state
                if state == "delivered":
                    fields["delivered_at"] = repr(now)
                pipe.hset(key, mapping=fields)
                pipe.zrem(DELIVERIES_DUE_KEY, delivery_id)
                pipe.expire(key, DELIVERY_RECORD_TTL_S)
                pipe.expire(delivery_attempts_key(delivery_id), DELIVERY_RECORD_TTL_S)
            await pipe.execute()
        if state == "dead":
            log.warning("webhook %s dead-lettered after %d tries: %s", delivery_id, attempts, error)
        self._on_outcome(state)
        return state
