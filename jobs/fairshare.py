"""Each tenant's fair share of the pipeline queue: one tenant's backlog never delays another's next job.

SAQ's queue is one FIFO list. Left alone, a tenant that accepts 10,000 mints puts 10,000 jobs in
front of every other tenant's next one. So a tenant has at most `per_tenant` jobs in the shared
queue at once (admitted: queued there or running on a worker); the rest wait in the tenant's own
line in Redis, oldest first, and take the place of each admitted job that leaves the pipeline
stage (reaches the minter, fails, or is gone). Another tenant's job therefore waits behind at
most `per_tenant` jobs of each busy tenant, whatever their backlogs.

A tenant has one line per chain (`fair_lane`): a chain that does not answer holds only that
chain's jobs in their profiling retries, and the tenant's jobs on other chains go on. The default
chain's lane is the tenant's name, as before several chains.

Nothing accepted is lost on the way: a job is admitted or waiting from the moment it is accepted
(`submit`), both in Redis; a place freed by a worker that died before it could hand it on is
found by the reconciler's `sweep`, and a job admitted but missing from the queue is re-enqueued
by the reconciler as before (enqueues are keyed, so a second one is a no-op).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio import Redis

from jobs import keys, lua
from jobs.model import JobStatus

# Statuses in which a job holds its place in the pipeline queue: it is queued or a worker runs it.
PIPELINE_STATUSES = frozenset(
    {JobStatus.QUEUED, JobStatus.PROFILING, JobStatus.STYLING, JobStatus.RENDERING, JobStatus.PINNING}
)

Enqueue = Callable[[str], Awaitable[None]]


def fair_lane(tenant: str, chain: str | None = None) -> str:
    """The line `tenant`'s jobs on `chain` (a route key; None: the default chain) wait in.

    `#` is in no tenant name (jobs/ids.py), so a lane never collides with a tenant's own."""
    return tenant if chain is None else f"{tenant}#{chain}"


def _ids(raw: Iterable[Any]) -> list[str]:
    return [item.decode() if isinstance(item, bytes) else str(item) for item in raw]


class FairShare:
    """Admission to the pipeline queue per tenant (jobs/scripts/fair_admit.lua, fair_release.lua)."""

    def __init__(self, redis: Redis, *, per_tenant: int, enqueue: Enqueue) -> None:
        if per_tenant < 1:
            raise ValueError("per_tenant must be at least 1")
        self.redis = redis
        self.per_tenant = per_tenant
        self._enqueue = enqueue
        self._admit = lua.register(redis, "fair_admit")
        self._release = lua.register(redis, "fair_release")

    def _keys(self, tenant: str) -> list[str]:
        return [keys.fair_admitted_key(tenant), keys.fair_waiting_key(tenant), keys.FAIR_TENANTS_KEY]

    async def submit(self, tenant: str, job_id: str, *, created_at: float | None = None) -> bool:
        """Admit the job (and enqueue it) or put it in the tenant's line; True when it is in the queue now.

        Safe to repeat: an admitted job is enqueued again (a no-op while the queue holds it, a revival
        when it does not), a waiting one keeps its place.
        """
        admitted = _ids(
            await self._admit(
                keys=self._keys(tenant),
                args=[job_id, repr(time.time() if created_at is None else created_at), self.per_tenant, tenant],
            )
        )
        for admitted_id in admitted:
            await self._enqueue(admitted_id)
        return job_id in admitted

    async def release(self, tenant: str, job_id: str) -> list[str]:
        """The job leaves the pipeline stage: its place goes to the tenant's oldest waiting jobs (enqueued)."""
        admitted = _ids(await self._release(keys=self._keys(tenant), args=[job_id, self.per_tenant, tenant]))
        for admitted_id in admitted:
            await self._enqueue(admitted_id)
        return admitted

    async def waiting(self, tenant: str) -> int:
        return int(await self.redis.zcard(keys.fair_waiting_key(tenant)))

    async def waiting_ids(self, tenant: str, *, limit: int = 100) -> list[str]:
        """The oldest `limit` jobs in the line, oldest first."""
        return _ids(await self.redis.zrange(keys.fair_waiting_key(tenant), 0, limit - 1))

    async def admitted(self, tenant: str) -> set[str]:
        return set(_ids(await self.redis.smembers(keys.fair_admitted_key(tenant))))  # type: ignore[misc]

    async def sweep(self) -> int:
        """Free the places of admitted jobs that left the pipeline stage without saying so; returns how many.

        A worker that died between a job's last status and its release, or a record that expired,
        would otherwise hold a place forever and, `per_tenant` of them later, stop the tenant's line.
        """
        freed = 0
        tenants: Any = await self.redis.smembers(keys.FAIR_TENANTS_KEY)  # type: ignore[misc]
        for tenant in _ids(tenants):
            admitted = sorted(await self.admitted(tenant))
            if not admitted:
                await self.release(tenant, "")  # fills from the line, or drops an idle tenant
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in admitted:
                    pipe.hget(keys.job_key(job_id), "status")
                statuses = await pipe.execute()
            for job_id, status in zip(admitted, statuses, strict=True):
                if status is None or JobStatus(status.decode()) not in PIPELINE_STATUSES:
                    await self.release(tenant, job_id)
                    freed += 1
        return freed
