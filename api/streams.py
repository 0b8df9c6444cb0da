"""Live job streams for SSE: one Redis reader per API process, and a cap on open streams per credential.

`StreamHub` multiplexes every open SSE stream of the process over one Redis connection of its own:
a single reader task runs `XREAD BLOCK` over all the streams subscribers follow (each at the
oldest position one of its subscribers still needs) and fans the entries out to per-subscriber
queues. An open stream holds no Redis connection, so no number of streams can take the shared pool
from the rest of the API. A new subscriber wakes the reader (an entry on the process's own wake
stream, which every XREAD includes), so it never waits out a block. The reader's socket timeout
is longer than its block, so an idle XREAD returns empty instead of timing out.

`StreamLeases` caps the streams a credential (API key or SIWE session) holds open across every API
process: each stream is a lease in a per-credential Redis sorted set scored by expiry, refreshed by
its process while the stream lives and removed when it ends; a crashed process's leases lapse after
`LEASE_TTL_S`, so the count can never leak for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.redis_urls import redis_client
from jobs import lua
from jobs.keys import stream_leases_key, stream_wake_key

log = logging.getLogger(__name__)

READ_BLOCK_MS = 10_000  # the reader's XREAD BLOCK: how long one empty round lasts
READER_SOCKET_TIMEOUT_S = READ_BLOCK_MS / 1000 + 10  # above the block: an idle XREAD never times out
READ_COUNT = 100  # entries per stream per round
LEASE_TTL_S = 30.0  # a stream lease lapses this long after its process stopped refreshing it
RETRY_AFTER_S = 5  # what a caller over its stream cap is told to wait
START_GRACE_S = 10.0  # a lease whose stream has not begun by then is given back
_REFRESH_S = LEASE_TTL_S / 3
_WAKE_TTL_MS = 600_000

Entry = tuple[str, dict[str, str]]


def stream_id(value: str) -> tuple[int, int]:
    """A stream entry id as the (ms, seq) pair Redis orders by."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Subscription:
    """One follower of one Redis stream: entries after `last` arrive on `queue`, in order."""

    stream: str
    last: tuple[int, int]
    queue: asyncio.Queue[Entry] = field(default_factory=asyncio.Queue)


class StreamHub:
    """One XREAD BLOCK reader per process over every subscribed stream (see the module docstring)."""

    def __init__(self, reader: Redis, waker: Redis) -> None:
        self._reader = reader  # its own connection: the blocking XREAD never takes one from the shared pool
        self._waker = waker  # the shared pool: the wake entries (short commands)
        self._wake_key = stream_wake_key(secrets.token_hex(8))
        self._wake_last = "0-0"
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._changed = asyncio.Event()
        self._reading = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, redis_url: str, waker: Redis, *, client_name: str | None = None) -> StreamHub:
        reader = redis_client(
            redis_url,
            single_connection_client=True,
            socket_timeout=READER_SOCKET_TIMEOUT_S,
            client_name=client_name,
        )
        return cls(reader, waker)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sse-stream-reader")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reader.aclose()
        with contextlib.suppress(RedisError):
            await self._waker.delete(self._wake_key)

    @property
    def open_streams(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    async def subscribe(self, stream: str, after: str) -> Subscription:
        """Follow `stream` from after the entry `after`; end with `unsubscribe`."""
        subscription = Subscription(stream, stream_id(after))
        self._subscriptions.setdefault(stream, set()).add(subscription)
        self._changed.set()
        if self._reading:  # the reader is blocked on the other streams: end its round now
            try:
                async with self._waker.pipeline(transaction=False) as pipe:
                    pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
                    pipe.pexpire(self._wake_key, _WAKE_TTL_MS)
                    await pipe.execute()
            except RedisError:
                self.unsubscribe(subscription)
                raise
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._subscriptions.get(subscription.stream)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._subscriptions[subscription.stream]

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self._subscriptions:
                self._changed.clear()
                await self._changed.wait()
                continue
            positions = {self._wake_key: self._wake_last}
            for stream, subs in self._subscriptions.items():
                ms, seq = min(sub.last for sub in subs)
                positions[stream] = f"{ms}-{seq}"
            self._reading = True
            try:
                found: Any = await self._reader.xread(positions, count=READ_COUNT, block=READ_BLOCK_MS)  # type: ignore[arg-type]
            except RedisError as exc:
                log.warning("SSE stream reader: %s (retrying in %.1f s)", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            finally:
                self._reading = False
            backoff = 0.1
            for raw_stream, entries in found or ():
                self._fan_out(raw_stream.decode(), entries)

    def _fan_out(self, stream: str, entries: list[Any]) -> None:
        if stream == self._wake_key:
            if entries:
                self._wake_last = entries[-1][0].decode()
            return
        decoded = [(eid.decode(), {k.decode(): v.decode() for k, v in fields.items()}) for eid, fields in entries]
        for subscription in tuple(self._subscriptions.get(stream, ())):
            for entry_id, fields in decoded:
                position = stream_id(entry_id)
                if position > subscription.last:
                    subscription.last = position
                    subscription.queue.put_nowait((entry_id, fields))


@dataclass(eq=False)
class _Lease:
    key: str  # the credential's set
    since: float  # monotonic time it was taken
    started: bool = False


class StreamLeases:
    """Each credential's open SSE streams, counted across API processes by expiring leases."""

    def __init__(self, redis: Redis, *, limit: int) -> None:
        self._redis = redis
        self._limit = limit
        self._acquire = lua.register(redis, "stream_lease_acquire")
        self._renew = lua.register(redis, "stream_lease_renew")
        self._held: dict[str, _Lease] = {}
        self._releasing: list[tuple[str, str]] = []
        self._release_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._refresh_forever(), name="sse-stream-leases"),
            asyncio.create_task(self._release_forever(), name="sse-stream-lease-releases"),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_releases()

    async def acquire(self, tenant: str, key_id: str) -> str | None:
        """A lease id for one more stream, or None when the credential already holds its limit."""
        key = stream_leases_key(tenant, key_id)
        lease = secrets.token_hex(8)
        ttl_ms = int(LEASE_TTL_S * 1000)
        if not await self._acquire(keys=[key], args=[lease, self._limit, ttl_ms]):
            return None
        self._held[lease] = _Lease(key, time.monotonic())
        return lease

    def started(self, lease: str) -> None:
        """The lease's stream began: from now on its end releases it (until then, START_GRACE_S does)."""
        held = self._held.get(lease)
        if held is not None:
            held.started = True

    def release(self, lease: str) -> None:
        """Give a lease's place back soon (one background pipeline for every release meanwhile).

        Not awaited by the stream: a stream ends by its client leaving, which Litestar turns into
        the cancellation of the stream's task group, and anyio delivers that again at every await,
        so a ZREM awaited there would often never be sent (the place stayed taken until the lease
        lapsed). Many streams closing at once also share one Redis round trip this way.
        """
        held = self._held.pop(lease, None)
        if held is not None:
            self._releasing.append((held.key, lease))
            self._release_wake.set()

    async def _flush_releases(self) -> None:
        releasing, self._releasing = self._releasing, []
        if not releasing:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, lease in releasing:
                    pipe.zrem(key, lease)
                await pipe.execute()
        except RedisError as exc:  # not released: each lapses after LEASE_TTL_S
            log.warning("SSE stream leases not released: %s", exc)

    async def _release_forever(self) -> None:
        while True:
            await self._release_wake.wait()
            self._release_wake.clear()
            await self._flush_releases()

    async def refresh(self) -> None:
        """Extend every lease whose stream lives (one script call); drop those whose stream never began.

        A response whose client left before its body was sent never runs the stream, so nothing
        else would release its lease.
        """
        stale = time.monotonic() - START_GRACE_S
        for lease in [lease for lease, held in self._held.items() if not held.started and held.since < stale]:
            self.release(lease)
        await self._flush_releases()
        held = list(self._held.items())
        if not held:
            return
        ttl_ms = int(LEASE_TTL_S * 1000)
        await self._renew(
            keys=[lease.key for _, lease in held], args=[a for lease_id, _ in held for a in (lease_id, ttl_ms)]
        )

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH_S)
            try:
                await self.refresh()
            except RedisError as exc:
                log.warning("SSE stream leases not refreshed: %s", exc)
