"""Live progress over server-sent events, read from the job's Redis stream `pm:job:{id}:events`.

Each SSE event's id is the stream entry id, so a reconnect with `Last-Event-ID` resumes exactly
after the last event the client saw: nothing is lost and nothing repeats. The stream ends after
the end state (confirmed | failed).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar.response import ServerSentEventMessage
from redis.asyncio import Redis

from api.errors import ApiError
from jobs.keys import events_key, job_key
from jobs.model import TERMINAL

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
KEEPALIVE_MS = 15_000
RECONNECT_MS = 1_000


def parse_last_event_id(value: str | None) -> str:
    """The stream id to resume after; '0-0' (from the start) when none is given."""
    if value is None or value == "":
        return "0-0"
    if not _STREAM_ID.match(value):
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
    redis: Redis, job_id: str, after: str, *, keepalive_ms: int = KEEPALIVE_MS
) -> AsyncIterator[ServerSentEventMessage]:
    """Replay what came after `after`, then follow live until the end state."""
    stream = events_key(job_id)
    last = after
    entries: Any = await redis.xrange(stream, min=f"({last}" if last != "0-0" else "-")
    backlog = _decode(entries)
    for entry_id, fields in backlog:
        last = entry_id
        yield _message(job_id, entry_id, fields)
        if fields.get("status") in TERMINAL:
            return
    # Resumed after the end state was already sent: nothing more will come.
    status: Any = await redis.hget(job_key(job_id), "status")
    if status is not None and status.decode() in TERMINAL:
        tail: Any = await redis.xrevrange(stream, count=1)
        if not tail or _is_after(last, tail[0][0].decode()):
            return
    while True:
        found: Any = await redis.xread({stream: last}, count=100, block=keepalive_ms)
        if not found:
            yield ServerSentEventMessage(comment="keep-alive")
            continue
        for entry_id, fields in _decode(found[0][1]):
            last = entry_id
            yield _message(job_id, entry_id, fields)
            if fields.get("status") in TERMINAL:
                return


def _is_after(a: str, b: str) -> bool:
    """Stream ids compare as (ms, seq) pairs, not as strings."""
    a_ms, a_seq = (int(x) for x in a.split("-"))
    b_ms, b_seq = (int(x) for x in b.split("-"))
    return (a_ms, a_seq) >= (b_ms, b_seq)
