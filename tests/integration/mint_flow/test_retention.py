"""Retention: an ended job's record and events expire, an open job's never; the all-jobs index is trimmed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis as redis_sync
from eth_account import Account
from redis.asyncio import Redis

from devstack.local import RedisServer
from jobs.fairshare import FairShare
from jobs.keys import ALL_JOBS_KEY, OPEN_JOBS_KEY, events_key, job_key
from jobs.model import JobError, JobStatus, PinStage
from jobs.store import JobStore
from processes.reconciler import Reconciler
from tests.support.polling import wait_for_job
from tests.support.stack import Stack


async def _nothing(job_id: str) -> None:
    return None


async def test_ended_jobs_expire_and_open_ones_stay(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url)
        jobs = JobStore(redis, retention_s=2)
        try:

            async def new_job() -> str:
                recipient = "0x" + Account.create().address[2:].lower()
                accepted = await jobs.accept(
                    tenant="t", recipient=recipient, collection="default", context={}, idempotency_key=None
                )
                return accepted.job_id

            confirmed, failed, open_job = await new_job(), await new_job(), await new_job()
            await jobs.set_status(confirmed, JobStatus.MINTING)
            await jobs.set_status(confirmed, JobStatus.CONFIRMED, extra={"token_id": 1})
            await jobs.fail(failed, JobError("render_failed", "test"))
            await jobs.set_status(open_job, JobStatus.MINTING)

            for ended in (confirmed, failed):
                assert 0 < await redis.ttl(job_key(ended)) <= 2
                assert 0 < await redis.ttl(events_key(ended)) <= 2
            assert await redis.ttl(job_key(open_job)) == -1  # no expiry while open
            assert await redis.ttl(events_key(open_job)) == -1

            await asyncio.sleep(2.2)
            assert await jobs.get(confirmed) is None
            assert await jobs.get(failed) is None
            assert await redis.exists(events_key(confirmed), events_key(failed)) == 0
            assert await jobs.get(open_job) is not None

            # A late writer (a retry that outlived the record) does not bring back a partial record.
            await jobs.set_status(confirmed, JobStatus.MINTING)
            await jobs.save_stage(confirmed, PinStage(image_cid="", metadata_cid="", token_uri="", image_uri=""), 0.1)
            await jobs.fail(confirmed, JobError("internal_error", "late"))
            assert await redis.exists(job_key(confirmed), events_key(confirmed)) == 0

            # The housekeeper's reconciler trims the all-jobs index by age; the open set keeps the open job.
            fair = FairShare(redis, per_tenant=4, enqueue=_nothing)
            reconciler = Reconciler(jobs, fair=fair, enqueue_mint=_nothing, every_s=1, after_s=3600)
            await reconciler.run_once()
            assert await redis.zcard(ALL_JOBS_KEY) == 0
            assert [m.decode() for m in await redis.zrange(OPEN_JOBS_KEY, 0, -1)] == [open_job]
        finally:
            await redis.aclose()


def test_the_service_sets_the_configured_retention_and_an_expired_job_reads_as_unknown(stack: Stack) -> None:
    with stack.client() as client:
        job_id = client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
        assert wait_for_job(client, job_id)["status"] == "confirmed"
        redis = redis_sync.Redis.from_url(stack.redis.url)
        try:
            month = 30 * 24 * 3600  # PERSONAMINT_JOB_RETENTION_S's default
            assert month - 60 < redis.ttl(job_key(job_id)) <= month
            assert month - 60 < redis.ttl(events_key(job_id)) <= month
            redis.delete(job_key(job_id), events_key(job_id))  # what the TTL does a month later
        finally:
            redis.close()
        time.sleep(0.05)
        gone = client.get(f"/v1/mints/{job_id}")
        assert gone.status_code == 404
        assert gone.json()["code"] == "job_not_found"
