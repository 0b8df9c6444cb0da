"""The reconciler: re-enqueues open jobs that no queue holds any more, and trims the all-jobs index."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from jobs.fairshare import FairShare
from jobs.model import JobStatus
from jobs.store import JobStore

log = logging.getLogger("personamint.reconciler")


class Reconciler:
    """Re-enqueue open jobs that no queue holds any more: the safety net under "nothing accepted is lost".

    A queue can drop a job: SAQ's sweep takes a dead worker's job off every list and puts it back
    a few seconds later, so a sweeper that dies in between orphans it; an enqueue can fail after
    the accept when Redis goes away. Enqueues are keyed, so re-enqueueing a job that a queue
    still holds is a no-op; this loop does it for every job open longer than `after_s`.
    """

    def __init__(
        self,
        jobs: JobStore,
        *,
        fair: FairShare,
        enqueue_mint: Callable[[str], Awaitable[None]],
        every_s: float,
        after_s: float,
        lane: Callable[[str, str], str] = lambda tenant, collection: tenant,
    ) -> None:
        self.jobs = jobs
        self.fair = fair
        self.lane = lane  # (tenant, collection) → its line in the fair share (a line per chain)
        self.enqueue_mint = enqueue_mint
        self.every_s = every_s
        self.after_s = after_s
        self._stop = asyncio.Event()

    async def run_once(self) -> int:
        # Ended jobs' records expire on their own (set_status.lua); their index entries go here.
        await self.jobs.trim()
        # Places in the tenants' shares held by jobs that left the pipeline stage unannounced.
        await self.fair.sweep()
        revived = 0
        for open_job in await self.jobs.open_jobs(created_before=time.time() - self.after_s):
            if open_job.status.ended:
                continue
            if open_job.status in (JobStatus.MINTING, JobStatus.VOUCHER_READY):
                # A voucher_ready job's mint job puts it back in its chain's voucher watch.
                await self.enqueue_mint(open_job.id)
            else:
                # Through the tenant's share: an admitted job is enqueued again, a waiting one keeps its place.
                lane = self.lane(open_job.tenant, open_job.collection)
                await self.fair.submit(lane, open_job.id, created_at=open_job.created_at)
            revived += 1
        return revived

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - Redis away: try again next round
                log.warning("reconciler: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every_s)

    def stop(self) -> None:
        self._stop.set()
