"""Mint jobs in Redis: atomic accept (idempotency + edition), saved stage outputs, status events."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from eth_utils.crypto import keccak
from redis.asyncio import Redis

from jobs.ratelimit import GCRA_LUA, Limit
from personalization.style import canonical_json

log = logging.getLogger("personamint.jobs")


STATUSES = ("queued", "profiling", "styling", "rendering", "pinning", "minting", "confirmed", "failed")


TERMINAL = ("confirmed", "failed")


STAGES = ("profile", "style", "render", "pin", "mint")


IDEMPOTENCY_TTL_S = 24 * 3600


EVENTS_MAXLEN = 1000


# Jobs not yet confirmed or failed, scored by creation time: what the reconciler looks at.
OPEN_JOBS_KEY = "pm:jobs:open"


# Accept atomically: an idempotency key maps to one job forever (24 h); a replay is answered
# before any limit is charged; then the recipient's rate limit and the per-wallet cap; the
# edition counter moves only when a new job is really created.
_ACCEPT = (
    GCRA_LUA
    + """
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local sep = string.find(existing, '|', 1, true)
    local job_id = string.sub(existing, 1, sep - 1)
    if string.sub(existing, sep + 1) == ARGV[2] then return {'existing', job_id} end
    return {'conflict', job_id}
  end
end
if tonumber(ARGV[8]) > 0 then
  local decision = gcra({{KEYS[6], ARGV[7], ARGV[8]}}, now_ms())
  if decision[1] == 0 then return {'rate_limited', '', tostring(decision[2])} end
end
local cap = tonumber(ARGV[9])
if cap > 0 and tonumber(redis.call('GET', KEYS[7]) or '0') >= cap then
  return {'cap_reached', '', tostring(cap)}
end
redis.call('INCR', KEYS[7])
local edition = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[3], 'edition', edition, unpack(cjson.decode(ARGV[3])))
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'status', 'queued', 'at', ARGV[4])
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[6]) end
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[4], ARGV[1])
return {'created', ARGV[1], tostring(edition)}
"""
)


# Every status change is one atomic step: the job hash, the event (with the stage timings so far,
# for live progress) and, on an end state, the outbound webhook in the outbox (transactional
# outbox: a confirmed job can never lack its delivery). A delivery is keyed by (job, status) and
# its event id derives from that key, so a repeated status write schedules nothing new.
# An ended job stays ended: a late writer (a pipeline retry that saw 'minting' before the minter
# confirmed) must not move it back or record its end twice. Scripts on KEYS[1] = the job start so.
_UNLESS_ENDED = (
    "local current = redis.call('HGET', KEYS[1], 'status')\n"
    f"if {' or '.join(f'current == {status!r}' for status in TERMINAL)} then return 0 end\n"
)


_SET_STATUS = (
    _UNLESS_ENDED
    + """
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'detail', ARGV[3])
local timings = {}
local has_timings = false
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 5) == 'time:' then
    timings[string.sub(flat[i], 6)] = tonumber(flat[i + 1])
    has_timings = true
  end
end
local event = {'status', ARGV[2], 'at', ARGV[5]}
if ARGV[3] ~= '' then table.insert(event, 'detail'); table.insert(event, ARGV[3]) end
if ARGV[4] ~= '' then table.insert(event, 'data'); table.insert(event, ARGV[4]) end
if has_timings then table.insert(event, 'timings'); table.insert(event, cjson.encode(timings)) end
local event_id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(event))
if ARGV[7] == '1' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  local tenant = redis.call('HGET', KEYS[1], 'tenant')
  if tenant and redis.call('EXISTS', 'pm:tenant:' .. tenant .. ':webhook') == 1 then
    local delivery_id = ARGV[1] .. '.' .. ARGV[2]
    local delivery_key = 'pm:whout:' .. delivery_id
    if redis.call('EXISTS', delivery_key) == 0 then
      redis.call('HSET', delivery_key,
        'id', delivery_id, 'tenant', tenant, 'job_id', ARGV[1], 'type', 'mint.' .. ARGV[2],
        'event_id', 'evt_' .. string.sub(redis.sha1hex(delivery_id), 1, 24),
        'state', 'pending', 'attempts', '0', 'created_at', ARGV[5], 'next_at', ARGV[5])
      redis.call('ZADD', 'pm:whout:due', ARGV[5], delivery_id)
      redis.call('ZADD', 'pm:whout:tenant:' .. tenant, ARGV[5], delivery_id)
    end
  end
end
return event_id
"""
)


# A stage's output and timing; an ended job's record is final (status reads keep its answer).
_SAVE_STAGE = (
    _UNLESS_ENDED
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
"""
)


# A failed job gives its wallet's cap slot back, once; an ended job is left as it is.
_RELEASE_CAP = (
    _UNLESS_ENDED
    + """
redis.call('HSET', KEYS[1], 'error', ARGV[1])
if redis.call('HSETNX', KEYS[1], 'cap_released', '1') == 1 then
  local collection = redis.call('HGET', KEYS[1], 'collection')
  local recipient = redis.call('HGET', KEYS[1], 'recipient')
  if collection and recipient then
    local counter = 'pm:minted:' .. collection .. ':' .. string.lower(recipient)
    if tonumber(redis.call('GET', counter) or '0') > 0 then redis.call('DECR', counter) end
  end
end
return 1
"""
)


def job_key(job_id: str) -> str:
    return f"pm:job:{job_id}"


def events_key(job_id: str) -> str:
    return f"pm:job:{job_id}:events"


def derive_seed(collection: str, recipient: str, edition: int) -> int:
    """seed = hash(collection, recipient, edition): previews show exactly the next mint."""
    digest = hashlib.sha256(f"{collection}:{recipient.lower()}:{edition}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def derive_request_id(tenant: str, idempotency_key: str | None, job_id: str) -> bytes:
    """The on-chain requestId: keyed requests collapse to one token whatever happens."""
    if idempotency_key is not None:
        return keccak(f"tenant:{tenant}:key:{idempotency_key}".encode())
    return keccak(f"job:{job_id}".encode())


def minted_key(collection: str, recipient: str) -> str:
    """Live (not failed) mints per wallet per collection: what a per-wallet cap counts."""
    return f"pm:minted:{collection}:{recipient.lower()}"


@dataclass(frozen=True)
class AcceptResult:
    outcome: str  # created | existing | conflict | rate_limited | cap_reached
    job_id: str
    retry_after_s: float = 0.0  # rate_limited: when the recipient may be minted to again
    cap: int = 0  # cap_reached: the cap


@dataclass
class Job:
    """A job record as stored; stage outputs are JSON documents saved as each stage completes."""

    id: str
    status: str
    tenant: str
    recipient: str
    collection: str
    context: dict[str, Any]
    edition: int
    seed: int
    request_id: str
    created_at: float
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    detail: str | None = None
    attempts: int = 0

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[bytes, bytes]) -> Job:
        # Status reads decode every record they serve: stage documents go straight from bytes
        # through msgspec (3-4x json.loads), and only the fields a Job has are decoded at all.
        stages = {name: _decode(raw[key]) for name, key in _STAGE_KEYS if key in raw}
        timings = {key[5:].decode(): float(value) for key, value in raw.items() if key.startswith(b"time:")}
        collection, recipient, edition = raw[b"collection"].decode(), raw[b"recipient"].decode(), int(raw[b"edition"])
        seed = raw.get(b"seed")
        error = raw.get(b"error")
        return cls(
            id=job_id,
            status=raw[b"status"].decode(),
            tenant=raw[b"tenant"].decode(),
            recipient=recipient,
            collection=collection,
            context=_decode(raw[b"context"]) if b"context" in raw else {},
            edition=edition,
            # The seed is a pure function of the job: derived, so no second write can go missing.
            seed=int(seed) if seed is not None else derive_seed(collection, recipient, edition),
            request_id=raw[b"request_id"].decode(),
            created_at=float(raw[b"created_at"]),
            stages=stages,
            timings=timings,
            error=_decode(error) if error is not None else None,
            detail=raw.get(b"detail", b"").decode() or None,
            attempts=int(raw.get(b"attempts", 0)),
        )


_STAGE_KEYS = tuple((name, f"stage:{name}".encode()) for name in STAGES)


_decode = msgspec.json.decode


class JobStore:
    """Every job-record read and write goes through here."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._accept = redis.register_script(_ACCEPT)
        self._set_status = redis.register_script(_SET_STATUS)
        self._release_cap = redis.register_script(_RELEASE_CAP)
        self._save_stage = redis.register_script(_SAVE_STAGE)

    async def accept(
        self,
        *,
        tenant: str,
        recipient: str,
        collection: str,
        context: dict[str, Any],
        idempotency_key: str | None,
        recipient_limit: Limit | None = None,
        cap: int = 0,
    ) -> AcceptResult:
        """Create the job, or find the one this idempotency key made; limits apply to new jobs only."""
        body_hash = hashlib.sha256(
            canonical_json({"recipient": recipient, "collection": collection, "context": context})
        ).hexdigest()
        job_id = uuid.uuid4().hex
        request_id = derive_request_id(tenant, idempotency_key, job_id)
        now = time.time()
        fields = [
            "status", "queued",
            "tenant", tenant,
            "recipient", recipient,
            "collection", collection,
            "context", json.dumps(context, sort_keys=True),
            "request_id", "0x" + request_id.hex(),
            "created_at", repr(now),
            "attempts", "0",
        ]  # fmt: skip
        idem_key = f"pm:idem:{tenant}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}" if idempotency_key else ""
        result = await self._accept(
            keys=[
                idem_key,
                f"pm:edition:{collection}:{recipient.lower()}",
                job_key(job_id),
                events_key(job_id),
                "pm:jobs",
                f"pm:rl:recipient:{recipient.lower()}",
                minted_key(collection, recipient),
                OPEN_JOBS_KEY,
            ],
            args=[
                job_id,
                body_hash,
                json.dumps(fields),
                repr(now),
                EVENTS_MAXLEN,
                IDEMPOTENCY_TTL_S,
                recipient_limit.interval_ms if recipient_limit else 0,
                recipient_limit.burst if recipient_limit else 0,
                cap,
            ],
        )
        outcome, found_id = result[0].decode(), result[1].decode()
        if outcome == "rate_limited":
            return AcceptResult(outcome, "", retry_after_s=int(result[2]) / 1000.0)
        if outcome == "cap_reached":
            return AcceptResult(outcome, "", cap=int(result[2]))
        return AcceptResult(outcome, found_id)

    async def get(self, job_id: str) -> Job | None:
        raw: Any = await self.redis.hgetall(job_key(job_id))
        if not raw or b"status" not in raw:
            return None
        return Job.from_hash(job_id, raw)

    async def set_status(
        self, job_id: str, status: str, *, detail: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        """Record a status change and its event; an end state also schedules the outbound webhook.

        A job already confirmed or failed is left unchanged (no event): ends are final.
        """
        assert status in STATUSES, status
        await self._set_status(
            keys=[job_key(job_id), events_key(job_id), OPEN_JOBS_KEY],
            args=[
                job_id,
                status,
                detail or "",
                json.dumps(extra, sort_keys=True) if extra else "",
                repr(time.time()),
                EVENTS_MAXLEN,
                "1" if status in TERMINAL else "0",
            ],
        )

    async def save_stage(self, job_id: str, stage: str, output: dict[str, Any], seconds: float) -> None:
        assert stage in STAGES, stage
        await self._save_stage(
            keys=[job_key(job_id)],
            args=[f"stage:{stage}", json.dumps(output, sort_keys=True), f"time:{stage}", repr(seconds)],
        )

    async def fail(self, job_id: str, error: dict[str, Any]) -> None:
        if not await self._release_cap(keys=[job_key(job_id)], args=[json.dumps(error, sort_keys=True)]):
            return  # already confirmed or failed
        await self.set_status(job_id, "failed", detail=error.get("message"), extra={"code": error.get("code")})

    async def open_jobs(self, *, created_before: float, limit: int = 500) -> list[tuple[str, str]]:
        """(job id, status) of jobs still open that were created before the given time, oldest first."""
        found_ids: Any = await self.redis.zrangebyscore(OPEN_JOBS_KEY, "-inf", created_before, 0, limit)
        job_ids = [raw.decode() for raw in found_ids]
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(job_key(job_id), "status")
            found = await pipe.execute()
        open_jobs = []
        for job_id, status in zip(job_ids, found, strict=True):
            if status is None:
                await self.redis.zrem(OPEN_JOBS_KEY, job_id)
                continue
            open_jobs.append((job_id, status.decode()))
        return open_jobs

    async def bump_attempts(self, job_id: str) -> int:
        return int(await self.redis.hincrby(job_key(job_id), "attempts", 1))

    async def events(self, job_id: str, after: str = "0-0", count: int = 100) -> list[tuple[str, dict[str, str]]]:
        entries: Any = await self.redis.xrange(
            events_key(job_id), min=f"({after}" if after != "0-0" else "-", count=count
        )
        return [(eid.decode(), {k.decode(): v.decode() for k, v in data.items()}) for eid, data in entries]
