"""Job records read straight from Redis (no API in between), for waits and failure messages."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import redis as redis_sync

TERMINAL = {"confirmed", "failed"}


def statuses(client: redis_sync.Redis, job_ids: list[str]) -> dict[str, str]:
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(f"pm:job:{job_id}", "status")
        found = pipe.execute()
    return {job_id: (raw.decode() if raw else "missing") for job_id, raw in zip(job_ids, found, strict=True)}


def wait_until(predicate: Any, timeout_s: float, what: str, explain: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f": {explain()}" if explain else ""))


def describe(store: redis_sync.Redis, job_ids: list[str]) -> str:
    """What the unfinished jobs look like: job record and SAQ records, for a failure message."""
    found = statuses(store, job_ids)
    lines = [str(Counter(found.values()))]
    for job_id, status in list(found.items()):
        if status in TERMINAL:
            continue
        record = {k.decode(): v.decode()[:60] for k, v in store.hgetall(f"pm:job:{job_id}").items()}
        lines.append(f"{job_id}: {status} attempts={record.get('attempts')} stages={sorted(record)}")
        for queue, key in (("pm-pipeline", "pipeline"), ("pm-mint", "mint")):
            raw = store.get(f"saq:job:{queue}:{key}:{job_id}")
            lines.append(f"  {queue}: {raw.decode()[:400] if raw else None}")
        if len(lines) > 12:
            break
    return "\n".join(lines)
