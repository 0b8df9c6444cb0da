"""SAQ queues on Redis: the pipeline queue (scaled-out workers), the preview queue and the mint queue (one minter)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from saq import Job as SaqJob
from saq import Queue
from saq.queue.redis import RedisQueue
from saq.types import PartialTimersDict

from config.settings import Settings

PIPELINE_QUEUE = "pm-pipeline"
MINT_QUEUE = "pm-mint"
# Previews: their own queue, consumed by the workers with their own bounded concurrency, so a
# preview flood never delays a mint.
PREVIEW_QUEUE = "pm-preview"


class TurnTakingQueue(RedisQueue):
    """A queue whose idle worker slots take turns at one blocking dequeue (BLMOVE) per process.

    SAQ has each of a worker's `concurrency` slots wait in its own BLMOVE, holding one Redis
    connection each for as long as the queue is empty (the minter's 512 slots: 512 connections).
    Here one slot waits in Redis while the others wait on a lock, so a process's connections are
    bounded by its pool, not by its concurrency; a dequeued job hands the turn to the next slot.
    """

    _turn: asyncio.Lock | None = None

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> SaqJob | None:  # noqa: ASYNC109 - SAQ's signature
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            return await super().dequeue(timeout, poll_interval)


class SweepingQueue(TurnTakingQueue):
    """SAQ's sweep holds a fixed 60 s lock and waits 5 s per dead job; honour our sweep interval instead."""

    sweep_lock_s = 60

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        del lock, abort
        return await super().sweep(lock=self.sweep_lock_s, abort=1.0)


def make_queue(redis: Redis, name: str, *, sweep_s: float | None = None) -> Queue:
    queue = SweepingQueue(redis, name=name)
    if sweep_s is not None:
        queue.sweep_lock_s = max(1, int(sweep_s))
    return queue


def worker_timers(sweep_s: float) -> PartialTimersDict:
    """A worker's timers: the sweep follows the settings, the rest are SAQ's defaults.

    worker_info is spelled out because SAQ's PartialTimersDict still requires every key.
    """
    return {"sweep": max(1, int(sweep_s)), "schedule": 1, "abort": 1, "worker_info": 10}


def job_options(settings: Settings) -> dict[str, Any]:
    return {
        "timeout": settings.job_timeout_s,
        "heartbeat": settings.job_heartbeat_s,
        "retries": settings.job_retries,
        "retry_delay": 0.5,
        "retry_backoff": 10.0,
        "ttl": 3600,
    }


async def enqueue_pipeline(queue: Queue, settings: Settings, job_id: str) -> None:
    # The key makes a repeated enqueue of a live job a no-op.
    await queue.enqueue("pipeline_job", key=f"pipeline:{job_id}", job_id=job_id, **job_options(settings))


async def enqueue_mint(queue: Queue, settings: Settings, job_id: str) -> None:
    await queue.enqueue("mint_job", key=f"mint:{job_id}", job_id=job_id, **job_options(settings))


@contextlib.asynccontextmanager
async def heartbeat(job: SaqJob | None, every_s: float) -> AsyncIterator[None]:
    """Touch the SAQ job while work runs, so a dead worker's job is swept but a slow one is not."""
    if job is None:
        yield
        return

    stop = asyncio.Event()

    async def beat() -> None:
        while True:
            # Stop by event, not task.cancel(): a cancel landing inside a redis call can be
            # swallowed there, and a beat that never stops keeps a finished job "active" forever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
                return
            with contextlib.suppress(Exception):
                await job.update()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        stop.set()
        await task
