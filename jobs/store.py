"""Mint jobs in Redis: atomic accept (idempotency + edition), saved stage outputs, status events."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from jobs import keys, lua
from jobs.codec import (
    decode_job,
    encode_error,
    encode_event_data,
    encode_output,
    new_record_fields,
    output_field,
    timing_field,
)
from jobs.ids import derive_request_id
from jobs.model import NOTIFIED, Job, JobError, JobStatus, Payer, StageOutput, stage_of
from jobs.ratelimit import Limit
from personalization.style import canonical_json

log = logging.getLogger("personamint.jobs")


IDEMPOTENCY_TTL_S = 24 * 3600


EVENTS_MAXLEN = 1000

# How long an ended job's record and event stream are kept (PERSONAMINT_JOB_RETENTION_S): after
# that the chain is the record of its token, and a status read answers 404 as for an unknown id.
JOB_RETENTION_S = 30 * 24 * 3600


@dataclass(frozen=True)
class AcceptResult:
    outcome: str  # created | existing | conflict | rate_limited | cap_reached | budget_spent
    job_id: str
    retry_after_s: float = 0.0  # rate_limited: when the recipient may be minted to again
    cap: int = 0  # cap_reached: the cap; budget_spent: the daily budget (retry_after_s: the day's end)


@dataclass(frozen=True)
class OpenJob:
    """A job not yet ended, as the reconciler sees it."""

    id: str
    status: JobStatus
    tenant: str
    created_at: float
    collection: str = "default"


@dataclass(frozen=True)
class DailyBudget:
    """Mints a bucket (a tenant, or every SIWE session together) may have accepted per UTC day."""

    bucket: str
    mints: int

    @staticmethod
    def day_of(now: float) -> tuple[str, float]:
        """The UTC day `YYYY-MM-DD` of `now`, and the seconds left in it."""
        return time.strftime("%Y-%m-%d", time.gmtime(now)), 86_400 - now % 86_400


# A day's budget counter outlives its day by one, then expires.
_BUDGET_TTL_S = 2 * 86_400


class JobStore:
    """Every job-record read and write goes through here."""

    def __init__(self, redis: Redis, *, retention_s: int = JOB_RETENTION_S) -> None:
        self.redis = redis
        self.retention_s = retention_s
        self._accept = lua.register(redis, "accept")
        self._set_status = lua.register(redis, "set_status")
        self._release_cap = lua.register(redis, "release_cap")
        self._save_stage = lua.register(redis, "save_stage")

    async def accept(
        self,
        *,
        tenant: str,
        recipient: str,
        collection: str,
        context: dict[str, Any],
        idempotency_key: str | None,
        recipient_limit: Limit | None = None,
        cap: int = 0,
        daily_budget: DailyBudget | None = None,
        payer: Payer = Payer.SERVICE,
        voucher_ttl_s: int | None = None,
        preview_id: str | None = None,
    ) -> AcceptResult:
        """Create the job, or find the one this idempotency key made; limits apply to new jobs only."""
        body: dict[str, Any] = {"recipient": recipient, "collection": collection, "context": context}
        if payer is Payer.COLLECTOR:  # absent for the service, so every earlier body keeps its hash
            body["payer"] = str(payer)
        if voucher_ttl_s is not None:
            body["voucher_ttl_s"] = voucher_ttl_s
        if preview_id is not None:
            body["preview_id"] = preview_id
        body_hash = hashlib.sha256(canonical_json(body)).hexdigest()
        job_id = uuid.uuid4().hex
        request_id = derive_request_id(tenant, idempotency_key, body_hash, job_id)
        now = time.time()
        day, day_left_s = DailyBudget.day_of(now)
        fields = new_record_fields(
            tenant=tenant,
            recipient=recipient,
            collection=collection,
            context=context,
            request_id="0x" + request_id.hex(),
            created_at=now,
            payer=payer,
            voucher_ttl_s=voucher_ttl_s,
        )
        result = await self._accept(
            keys=[
                keys.mint_idempotency_key(tenant, idempotency_key) if idempotency_key else "",
                keys.edition_key(collection, recipient),
                keys.job_key(job_id),
                keys.events_key(job_id),
                keys.ALL_JOBS_KEY,
                keys.recipient_rate_limit_key(tenant, recipient),
                keys.minted_key(tenant, collection, recipient),
                keys.OPEN_JOBS_KEY,
                keys.legacy_mint_idempotency_key(tenant, idempotency_key) if idempotency_key else "",
                keys.daily_mint_budget_key(daily_budget.bucket, day) if daily_budget else "",
            ],
            args=[
                job_id,
                body_hash,
                json.dumps(fields),
                repr(now),
                EVENTS_MAXLEN,
                IDEMPOTENCY_TTL_S,
                recipient_limit.interval_ms if recipient_limit else 0,
                recipient_limit.burst if recipient_limit else 0,
                cap,
                daily_budget.mints if daily_budget else 0,
                _BUDGET_TTL_S,
            ],
        )
        outcome, found_id = result[0].decode(), result[1].decode()
        if outcome == "rate_limited":
            return AcceptResult(outcome, "", retry_after_s=int(result[2]) / 1000.0)
        if outcome == "cap_reached":
            return AcceptResult(outcome, "", cap=int(result[2]))
        if outcome == "budget_spent":
            return AcceptResult(outcome, "", retry_after_s=day_left_s, cap=int(result[2]))
        return AcceptResult(outcome, found_id)

    async def get(self, job_id: str) -> Job | None:
        raw: Any = await self.redis.hgetall(keys.job_key(job_id))
        if not raw or b"status" not in raw:
            return None
        return decode_job(job_id, raw)

    async def set_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        detail: str | None = None,
        extra: Mapping[str, str | int] | None = None,
    ) -> None:
        """Record a status change and its event (`extra` is the event's data); an end state also
        schedules the outbound webhook.

        A job already confirmed or failed is left unchanged (no event): ends are final.
        """
        status = JobStatus(status)
        await self._set_status(
            keys=[keys.job_key(job_id), keys.events_key(job_id), keys.OPEN_JOBS_KEY, keys.DELIVERIES_DUE_KEY],
            args=[
                job_id,
                status,
                detail or "",
                encode_event_data(extra) if extra else "",
                repr(time.time()),
                EVENTS_MAXLEN,
                "1" if status.ended else "0",
                keys.WEBHOOK_ENDPOINT_TEMPLATE,
                keys.DELIVERY_TEMPLATE,
                keys.TENANT_DELIVERIES_TEMPLATE,
                self.retention_s,
                "1" if status in NOTIFIED else "0",
            ],
        )

    async def save_stage(self, job_id: str, output: StageOutput, seconds: float) -> None:
        """Save a stage's output and timing (the stage is the output's); an ended job's record is final."""
        stage = stage_of(output)
        await self._save_stage(
            keys=[keys.job_key(job_id)],
            args=[output_field(stage), encode_output(output), timing_field(stage), repr(seconds)],
        )

    async def fail(self, job_id: str, error: JobError) -> None:
        """End the job failed, giving its wallet's cap slot back; a job already ended is left as it is."""
        if not await self._release_cap(keys=[keys.job_key(job_id)], args=[encode_error(error)]):
            return
        await self.set_status(job_id, JobStatus.FAILED, detail=error.message, extra={"code": error.code})

    async def expire(self, job_id: str, detail: str) -> None:
        """End a collector-paid job whose voucher's deadline passed unused, giving its wallet's cap slot back."""
        error = JobError("voucher_expired", detail)
        if not await self._release_cap(keys=[keys.job_key(job_id)], args=[encode_error(error)]):
            return
        await self.set_status(job_id, JobStatus.EXPIRED, detail=detail, extra={"code": error.code})

    async def open_jobs(self, *, created_before: float, limit: int = 500) -> list[OpenJob]:
        """Jobs still open that were created before the given time, oldest first."""
        found_ids: Any = await self.redis.zrangebyscore(
            keys.OPEN_JOBS_KEY, "-inf", created_before, 0, limit, withscores=True
        )
        found_jobs = [(raw.decode(), float(score)) for raw, score in found_ids]
        if not found_jobs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _ in found_jobs:
                pipe.hmget(keys.job_key(job_id), ["status", "tenant", "collection"])
            found = await pipe.execute()
        open_jobs = []
        for (job_id, created_at), (status, tenant, collection) in zip(found_jobs, found, strict=True):
            if status is None or tenant is None:
                await self.redis.zrem(keys.OPEN_JOBS_KEY, job_id)
                continue
            open_jobs.append(
                OpenJob(
                    job_id,
                    JobStatus(status.decode()),
                    tenant.decode(),
                    created_at,
                    collection.decode() if collection else "default",
                )
            )
        return open_jobs

    async def trim(self, *, now: float | None = None) -> int:
        """Drop jobs older than the retention from the all-jobs index; returns how many went.

        Ended jobs' records expire on their own (set_status.lua); an open job stays in the open set
        and keeps its record whatever its age.
        """
        cutoff = (time.time() if now is None else now) - self.retention_s
        return int(await self.redis.zremrangebyscore(keys.ALL_JOBS_KEY, "-inf", f"({cutoff!r}"))

    async def bump_attempts(self, job_id: str) -> int:
        return int(await self.redis.hincrby(keys.job_key(job_id), "attempts", 1))

    async def events(self, job_id: str, after: str = "0-0", count: int = 100) -> list[tuple[str, dict[str, str]]]:
        entries: Any = await self.redis.xrange(
            keys.events_key(job_id), min=f"({after}" if after != "0-0" else "-", count=count
        )
        return [(eid.decode(), {k.decode(): v.decode() for k, v in data.items()}) for eid, data in entries]
