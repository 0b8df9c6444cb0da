"""Live progress over server-sent events, read from the job's Redis stream `pm:job:{id}:events`.

Each SSE event's id is the stream entry id, so a reconnect with `Last-Event-ID` resumes exactly
after the last event the client saw: nothing is lost and nothing repeats. The stream ends after
the end state (confirmed | failed).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar.response import ServerSentEventMessage
from redis.asyncio import Redis

from api.errors import ApiError
from api.streams import StreamHub, stream_id
from jobs.keys import events_key, job_key
from jobs.model import TERMINAL

_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_ID_PART_MAX = 2**64 - 1  # Redis stream ids are two unsigned 64-bit numbers
RECONNECT_MS = 1_000


def parse_last_event_id(value: str | None) -> str:
    """The stream id to resume after; '0-0' (from the start) when none is given."""
    if value is None or value == "":
        return "0-0"
    if not _STREAM_ID.fullmatch(value) or max(stream_id(value)) > _ID_PART_MAX:
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an id this stream sent (e.g. 1700-0)")
    return value


def _message(job_id: str, entry_id: str, fields: dict[str, str]) -> ServerSentEventMessage:
    data: dict[str, Any] = {"id": job_id, "status": fields.get("status"), "at": float(fields.get("at", 0))}
    if "detail" in fields:
        data["detail"] = fields["detail"]
    if "data" in fields:
        data["data"] = json.loads(fields["data"])
    if "timings" in fields:
        data["timings"] = {k: round(v, 4) for k, v in json.loads(fields["timings"]).items()}
    return ServerSentEventMessage(
        data=json.dumps(data, separators=(",", ":")), event="status", id=entry_id, retry=RECONNECT_MS
    )


def _decode(entries: list[Any]) -> list[tuple[str, dict[str, str]]]:
    return [(eid.decode(), {k.decode(): v.decode() for k, v in fields.items()}) for eid, fields in entries]


async def job_events(
    redis: Redis, hub: StreamHub, job_id: str, after: str, *, keepalive_s: float
) -> AsyncIterator[ServerSentEventMessage]:
    """Replay what came after `after`, then follow live (through the hub) until the end state.

    The job's status is read before the replay: the end event is written with the end status in
    one step, so a job already ended has its end event in the replay, or the caller saw it (or
    resumed past it); either way the stream closes instead of waiting for an event that never comes.
    An id past the stream's last entry is taken as that entry, so such a stream still ends with the job.
    """
    stream = events_key(job_id)
    status: Any = await redis.hget(job_key(job_id), "status")
    ended = status is not None and status.decode() in TERMINAL
    tail: Any = await redis.xrevrange(stream, count=1)
    last = after
    if not tail:
        last = "0-0"  # nothing written yet: whatever comes is after anything the caller could have seen
    elif stream_id(after) > stream_id(tail[0][0].decode()):
        last = tail[0][0].decode()
    entries: Any = await redis.xrange(stream, min=f"({last}" if last != "0-0" else "-")
    for entry_id, fields in _decode(entries):
        last = entry_id
        yield _message(job_id, entry_id, fields)
        if fields.get("status") in TERMINAL:
            return
    if ended:
        return
    subscription = await hub.subscribe(stream, last)
    try:
        while True:
            try:
                entry_id, fields = await asyncio.wait_for(subscription.queue.get(), keepalive_s)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            yield _message(job_id, entry_id, fields)
            if fields.get("status") in TERMINAL:
                return
    finally:
        hub.unsubscribe(subscription)
