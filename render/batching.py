"""Micro-batching: render jobs that arrive close together share one batch on the accelerator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from render.errors import RenderError

log = logging.getLogger("personamint.render.batching")

Request = TypeVar("Request")
Result = TypeVar("Result")
Value = TypeVar("Value")


class BatcherClosed(RuntimeError):
    """A render was submitted to, or still queued in, a micro-batcher that is shutting down.

    Deliberately not a RenderError: workers fail jobs on RenderError at once,
    while this one only means "this worker is stopping": the job must be retried.
    """

    code = "renderer_closed"


@dataclass
class BatcherStats:
    """Counters a worker can log or export: how well requests found company."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    busy_seconds: float = 0.0


@dataclass
class _Queued(Generic[Request, Result]):
    request: Request
    key: Hashable
    future: asyncio.Future[Result]
    arrived: float


class MicroBatcher(Generic[Request, Result]):
    """Collects submitted requests and hands them to `run_batch` in groups of compatible ones.

    `run_batch(requests)` is blocking (it drives the GPU) and runs on one
    dedicated thread, one batch at a time (CUDA graphs captured by
    torch.compile belong to the thread that recorded them, so every call —
    warm-up included, see `call` — must come from the same thread); it
    returns one entry per request, either the
    result or an exception for that request alone. Requests are compatible when
    `key(request)` is equal (same model settings, size, steps): only those can
    share a forward pass.

    Latency rule: the oldest queued request waits at most `max_wait_ms` for
    company, counted from its arrival. While a batch runs, new arrivals queue;
    when it finishes, up to `max_batch_size` of them go at once, having already
    waited. So a lone job on an idle worker is delayed by `max_wait_ms` at most,
    and a busy worker fills batches without waiting at all.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Request]], Sequence[Result | BaseException]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        key: Callable[[Request], Hashable] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._key: Callable[[Request], Hashable] = key or (lambda _request: None)
        self._queue: deque[_Queued[Request, Result]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-batch")
        self.stats = BatcherStats()

    async def submit(self, request: Request) -> Result:
        """Queue one request and wait for its own result (or its own exception)."""
        if self._closing:
            raise BatcherClosed("the renderer is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append(_Queued(request, self._key(request), future, time.monotonic()))
        if self._task is None:
            self._task = loop.create_task(self._serve(), name="render-micro-batcher")
        self._wake.set()
        return await future

    async def call(self, work: Callable[..., Value], *args: Any) -> Value:
        """Run other blocking GPU work (warm-up) on the batch thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    async def aclose(self) -> None:
        """Finish the batch in flight, fail whatever is still queued, stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_queued(BatcherClosed("the renderer shut down before this render started"))
        self._thread.shutdown(wait=False)

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def _serve(self) -> None:
        while not self._closing:
            self._drop_cancelled()
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = await self._collect()
            if batch:
                await self._run(batch)

    async def _collect(self) -> list[_Queued[Request, Result]]:
        """Wait (bounded by the oldest request's deadline) for a full batch of its key, then take it."""
        head = self._queue[0]
        deadline = head.arrived + self.max_wait
        while not self._closing:
            self._drop_cancelled()
            if not self._queue or self._queue[0] is not head:
                return []  # the head was cancelled: start over with the new oldest
            same = sum(1 for queued in self._queue if queued.key == head.key)
            remaining = deadline - time.monotonic()
            if same >= self.max_batch_size or remaining <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=remaining)
        if self._closing:
            return []
        batch: list[_Queued[Request, Result]] = []
        keep: deque[_Queued[Request, Result]] = deque()
        for queued in self._queue:
            if queued.key == head.key and len(batch) < self.max_batch_size:
                batch.append(queued)
            else:
                keep.append(queued)
        self._queue = keep
        return batch

    async def _run(self, batch: list[_Queued[Request, Result]]) -> None:
        started = time.perf_counter()
        try:
            outcomes: Sequence[Result | BaseException] = await asyncio.get_running_loop().run_in_executor(
                self._thread, self._run_batch, [queued.request for queued in batch]
            )
            if len(outcomes) != len(batch):
                raise RenderError(f"run_batch returned {len(outcomes)} results for {len(batch)} requests")
        except Exception as exc:  # noqa: BLE001 - a failed batch fails each of its requests, never the loop
            log.warning("render batch of %d failed: %s", len(batch), type(exc).__name__)
            outcomes = [exc] * len(batch)
        seconds = time.perf_counter() - started
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
        self.stats.busy_seconds += seconds
        for queued, outcome in zip(batch, outcomes, strict=True):
            if queued.future.done():  # the caller gave up (cancelled) meanwhile
                continue
            if isinstance(outcome, BaseException):
                queued.future.set_exception(outcome)
            else:
                queued.future.set_result(outcome)

    def _drop_cancelled(self) -> None:
        if any(queued.future.done() for queued in self._queue):
            self._queue = deque(queued for queued in self._queue if not queued.future.done())

    def _fail_queued(self, error: BaseException) -> None:
        while self._queue:
            queued = self._queue.popleft()
            if not queued.future.done():
                queued.future.set_exception(error)
