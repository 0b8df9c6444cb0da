"""Each tenant's share of the pipeline queue, on a real Redis and through the whole stack."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from eth_account import Account
from redis.asyncio import Redis

from devstack.local import RedisServer
from jobs.fairshare import FairShare, fair_lane
from jobs.keys import FAIR_TENANTS_KEY
from jobs.model import JobStatus
from jobs.store import JobStore
from processes.reconciler import Reconciler
from tests.support.polling import wait_for_job
from tests.support.stack import Stack


async def _accept(jobs: JobStore, tenant: str, *, collection: str = "default") -> tuple[str, float]:
    recipient = "0x" + Account.create().address[2:].lower()
    accepted = await jobs.accept(
        tenant=tenant, recipient=recipient, collection=collection, context={}, idempotency_key=None
    )
    job = await jobs.get(accepted.job_id)
    assert job is not None
    return job.id, job.created_at


async def test_a_tenants_backlog_waits_in_its_own_line(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url)
        enqueued: list[str] = []

        async def enqueue(job_id: str) -> None:
            enqueued.append(job_id)

        jobs = JobStore(redis)
        fair = FairShare(redis, per_tenant=2, enqueue=enqueue)
        try:
            flood = [await _accept(jobs, "tenant-a") for _ in range(5)]
            for job_id, created_at in flood:
                await fair.submit("tenant-a", job_id, created_at=created_at)
            assert enqueued == [flood[0][0], flood[1][0]]  # its share, oldest first; the rest wait
            assert await fair.waiting("tenant-a") == 3

            other, other_created = await _accept(jobs, "tenant-b")
            assert await fair.submit("tenant-b", other, created_at=other_created)
            assert enqueued[-1] == other  # straight in, behind two of A's, not five

            # Submitting again: an admitted job is enqueued again (keyed: a no-op, or a revival), a
            # waiting one keeps its place and is not enqueued.
            assert await fair.submit("tenant-a", flood[0][0], created_at=flood[0][1])
            assert not await fair.submit("tenant-a", flood[4][0], created_at=flood[4][1])
            assert enqueued[-1] == flood[0][0]
            assert await fair.waiting("tenant-a") == 3

            # A job that leaves the pipeline hands its place to the tenant's oldest waiting one.
            assert await fair.release("tenant-a", flood[0][0]) == [flood[2][0]]
            assert await fair.admitted("tenant-a") == {flood[1][0], flood[2][0]}

            # A job that left the pipeline without saying so (its worker died after its last status)
            # holds its place only until the reconciler's sweep.
            await jobs.set_status(flood[1][0], JobStatus.MINTING)
            reconciler = Reconciler(jobs, fair=fair, enqueue_mint=enqueue, every_s=1, after_s=3600)
            await reconciler.run_once()
            assert await fair.admitted("tenant-a") == {flood[2][0], flood[3][0]}

            # The reconciler revives open jobs through the share: admitted ones are enqueued again,
            # waiting ones are not pushed past the line.
            enqueued.clear()
            reconciler.after_s = -60
            await reconciler.run_once()
            assert flood[4][0] not in enqueued
            assert {flood[2][0], flood[3][0], other} <= set(enqueued)

            # A tenant with nothing admitted or waiting leaves the sweep's list.
            await fair.release("tenant-b", other)
            assert [t.decode() for t in await redis.smembers(FAIR_TENANTS_KEY)] == ["tenant-a"]  # type: ignore[misc]
        finally:
            await redis.aclose()


async def test_a_tenant_has_a_line_per_chain_and_the_reconciler_revives_into_it(tmp_path: Path) -> None:
    """A chain that does not answer holds the places of that chain's jobs only: the same tenant's
    jobs on another chain are admitted in a line of their own."""
    with RedisServer(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url)
        enqueued: list[str] = []

        async def enqueue(job_id: str) -> None:
            enqueued.append(job_id)

        jobs = JobStore(redis)
        fair = FairShare(redis, per_tenant=2, enqueue=enqueue)
        try:
            stuck = [await _accept(jobs, "tenant-a", collection="second") for _ in range(3)]
            for job_id, created_at in stuck:
                await fair.submit(fair_lane("tenant-a", "31338"), job_id, created_at=created_at)
            assert enqueued == [stuck[0][0], stuck[1][0]]
            other, other_created = await _accept(jobs, "tenant-a")
            assert await fair.submit(fair_lane("tenant-a"), other, created_at=other_created)
            assert fair_lane("tenant-a") == "tenant-a"
            assert fair_lane("tenant-a", "31338") == "tenant-a#31338"
            assert await fair.waiting("tenant-a#31338") == 1

            # The reconciler puts each job back in its own chain's line (by the job's collection).
            enqueued.clear()
            reconciler = Reconciler(
                jobs,
                fair=fair,
                enqueue_mint=enqueue,
                every_s=1,
                after_s=-60,
                lane=lambda tenant, collection: fair_lane(tenant, "31338" if collection == "second" else None),
            )
            await reconciler.run_once()
            assert set(enqueued) == {stuck[0][0], stuck[1][0], other}
            assert await fair.admitted("tenant-a") == {other}
            assert await fair.admitted("tenant-a#31338") == {stuck[0][0], stuck[1][0]}
        finally:
            await redis.aclose()


def test_another_tenants_mint_overtakes_a_flood(stack: Stack) -> None:
    """Tenant A accepts 40 mints at once; tenant B's one, sent after them, is not served after all 40."""
    flood_key = stack.new_key("fair-flood", rate_per_min=60_000, burst=200)
    with stack.client(flood_key) as flooder, stack.client(stack.new_key("fair-other")) as other:
        flood = [
            flooder.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"] for _ in range(40)
        ]
        job_id = other.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
        assert wait_for_job(other, job_id, timeout_s=120)["status"] == "confirmed"
        statuses = [_status(flooder, flood_id) for flood_id in flood]
        # Without the share B's job would have been the 41st in the pipeline queue; with it, it
        # waited behind at most TENANT_PIPELINE_IN_FLIGHT (8) of A's.
        assert statuses.count("queued") >= 15, statuses
        for flood_id in flood:
            assert wait_for_job(flooder, flood_id, timeout_s=180)["status"] == "confirmed"


def _status(client: httpx.Client, job_id: str) -> str:
    deadline = time.monotonic() + 5
    while True:
        response = client.get(f"/v1/mints/{job_id}")
        if response.status_code == 200 or time.monotonic() > deadline:
            return str(response.json()["status"])
        time.sleep(0.1)
