"""The webhook deliverer: sends due outbox deliveries, retried with backoff, dead-lettered."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from jobs.keys import DELIVERIES_DUE_KEY, delivery_attempts_key, delivery_key, webhook_endpoint_key
from jobs.outbox import DELIVERY_RECORD_TTL_S, DueDeliveries, decoded
from jobs.store import JobStore
from observability.logging import job_context
from webhooks.egress import EgressPolicy, EgressRefused, egress_client
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
    return float(value) if value.isascii() and value.isdigit() else None  # not ², which float() refuses


class WebhookDeliverer:
    """The outbound loop: claim due deliveries, POST them signed, record the outcome, back off or dead-letter.

    Fair between tenants: deliveries run concurrently, at most `concurrency` in flight and at
    most `tenant_concurrency` per tenant (one endpoint each), and the loop claims again whenever a
    slot frees (never waiting for a whole batch). A claimed delivery whose tenant already has its
    slots busy goes straight back to the due set, so a slow endpoint only ever holds its own slots.

    Every request goes through the egress client (`webhooks.egress`): the URL is checked again,
    the host resolved and every address vetted, and the connection made to a vetted address.
    A refusal is a dead letter with the generic `egress_refused`; what a tenant sees of any
    failure is a class (`timeout`, `refused`, `http_<status>`), never network details.
    """

    def __init__(
        self,
        redis: Redis,
        jobs: JobStore,
        policy: RetryPolicy,
        *,
        poll_s: float = 0.5,
        concurrency: int = 64,
        tenant_concurrency: int = 4,
        egress: EgressPolicy | None = None,
        client: httpx.AsyncClient | None = None,
        on_outcome: Any = None,
    ) -> None:
        self.redis = redis
        self.jobs = jobs
        self.policy = policy
        self.poll_s = poll_s
        self.concurrency = concurrency
        self.tenant_concurrency = tenant_concurrency
        self.egress = egress or EgressPolicy()
        self._client = client or egress_client(self.egress, timeout_s=policy.timeout_s)
        self._due = DueDeliveries(redis)
        self._stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._running: set[asyncio.Task[str]] = set()
        self._per_tenant: Counter[str] = Counter()
        self._on_outcome = on_outcome or (lambda outcome: None)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                started = await self.fill()
            except Exception as exc:  # noqa: BLE001 - Redis away: keep the loop alive and try again
                log.warning("webhook delivery loop: %s", type(exc).__name__)
                started = 0
            if started == 0 or len(self._running) >= self.concurrency:
                await self._idle()

    async def _idle(self) -> None:
        """Until a slot frees, the loop is stopped, or a poll interval passed."""
        self._slot_freed.clear()
        waits = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._slot_freed.wait())]
        try:
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def stop(self) -> None:
        """Stop claiming, let the attempts in flight finish, close the client."""
        self._stop.set()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        await self._client.aclose()

    async def fill(self) -> int:
        """Claim as many due deliveries as there are free slots and start them; returns how many started."""
        free = self.concurrency - len(self._running)
        if free <= 0:
            return 0
        now = time.time()
        claimed = await self._due.claim(now=now, lease_until=now + self.policy.timeout_s + 5, batch=free)
        if not claimed:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in claimed:
                pipe.hget(delivery_key(delivery_id), "tenant")
            tenants = await pipe.execute()
        started, deferred = 0, {}
        for delivery_id, raw in zip(claimed, tenants, strict=True):
            tenant = raw.decode() if raw is not None else ""
            if tenant and self._per_tenant[tenant] >= self.tenant_concurrency:
                deferred[delivery_id] = now + self.poll_s  # its tenant's slots are busy: due again shortly
                continue
            self._start(delivery_id, tenant)
            started += 1
        if deferred:
            await self.redis.zadd(DELIVERIES_DUE_KEY, deferred, xx=True)
        return started

    def _start(self, delivery_id: str, tenant: str) -> None:
        self._per_tenant[tenant] += 1
        task = asyncio.create_task(self.deliver(delivery_id), name=f"webhook-{delivery_id}")
        self._running.add(task)

        def done(finished: asyncio.Task[str]) -> None:
            self._running.discard(finished)
            self._per_tenant[tenant] -= 1
            if self._per_tenant[tenant] <= 0:
                del self._per_tenant[tenant]
            self._slot_freed.set()
            if not finished.cancelled() and finished.exception() is not None:
                log.warning("webhook %s: %s", delivery_id, type(finished.exception()).__name__)

        task.add_done_callback(done)

    async def run_once(self) -> int:
        """Start what is due now and wait for those attempts (tests and one-shot tools)."""
        started = await self.fill()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        return started

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
        try:
            self.egress.check_url(endpoint["url"])  # stored before the policy, or the policy changed
        except EgressRefused as exc:
            log.warning("webhook %s: endpoint refused by the egress policy (%s)", delivery_id, exc.reason)
            return await self._finish(delivery_id, record, "dead", None, EgressRefused.code, 0.0)
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
        except EgressRefused as exc:  # a resolved address is refused: nothing was contacted
            log.warning("webhook %s: resolved address refused by the egress policy (%s)", delivery_id, exc.reason)
            return await self._finish(delivery_id, record, "dead", None, EgressRefused.code, 0.0)
        except httpx.HTTPError as exc:
            seconds = time.perf_counter() - started
            log.info("webhook %s attempt failed: %s", delivery_id, type(exc).__name__)
            failure = "timeout" if isinstance(exc, httpx.TimeoutException) else "refused"
            return await self._finish(delivery_id, record, "retry", None, failure, seconds)
        seconds = time.perf_counter() - started
        status = response.status_code
        if 200 <= status < 300:
            return await self._finish(delivery_id, record, "delivered", status, None, seconds)
        if status == 429 or status >= 500:
            return await self._finish(
                delivery_id, record, "retry", status, f"http_{status}", seconds, _retry_after(response)
            )
        return await self._finish(delivery_id, record, "dead", status, f"http_{status} (not retried)", seconds)

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
