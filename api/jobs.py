"""Mint jobs in Redis: atomic accept (idempotency + edition), saved stage outputs, status events."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak
from redis.asyncio import Redis

from personalization.style import canonical_json

STATUSES = ("queued", "profiling", "styling", "rendering", "pinning", "minting", "confirmed", "failed")
TERMINAL = ("confirmed", "failed")
STAGES = ("profile", "style", "render", "pin", "mint")
IDEMPOTENCY_TTL_S = 24 * 3600
EVENTS_MAXLEN = 1000

# Accept atomically: an idempotency key maps to one job forever (24 h), and the
# edition counter moves only when a new job is really created.
_ACCEPT = """
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local sep = string.find(existing, '|', 1, true)
    local job_id = string.sub(existing, 1, sep - 1)
    if string.sub(existing, sep + 1) == ARGV[2] then return {'existing', job_id} end
    return {'conflict', job_id}
  end
end
local edition = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[3], 'edition', edition, unpack(cjson.decode(ARGV[3])))
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'status', 'queued', 'at', ARGV[4])
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[6]) end
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
return {'created', ARGV[1], tostring(edition)}
"""


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


@dataclass(frozen=True)
class AcceptResult:
    outcome: str  # created | existing | conflict
    job_id: str


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
        values = {k.decode(): v.decode() for k, v in raw.items()}
        stages = {name: json.loads(values[f"stage:{name}"]) for name in STAGES if f"stage:{name}" in values}
        timings = {key.removeprefix("time:"): float(value) for key, value in values.items() if key.startswith("time:")}
        return cls(
            id=job_id,
            status=values["status"],
            tenant=values["tenant"],
            recipient=values["recipient"],
            collection=values["collection"],
            context=json.loads(values.get("context", "{}")),
            edition=int(values["edition"]),
            seed=int(values["seed"]) if "seed" in values else 0,
            request_id=values["request_id"],
            created_at=float(values["created_at"]),
            stages=stages,
            timings=timings,
            error=json.loads(values["error"]) if "error" in values else None,
            detail=values.get("detail") or None,
            attempts=int(values.get("attempts", 0)),
        )


class JobStore:
    """Every job-record read and write goes through here."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._accept = redis.register_script(_ACCEPT)

    async def accept(
        self,
        *,
        tenant: str,
        recipient: str,
        collection: str,
        context: dict[str, Any],
        idempotency_key: str | None,
    ) -> AcceptResult:
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
            ],
            args=[job_id, body_hash, json.dumps(fields), repr(now), EVENTS_MAXLEN, IDEMPOTENCY_TTL_S],
        )
        outcome, found_id = result[0].decode(), result[1].decode()
        if outcome == "created":
            edition = int(result[2])
            await self.redis.hset(job_key(job_id), "seed", str(derive_seed(collection, recipient, edition)))
        return AcceptResult(outcome, found_id)

    async def get(self, job_id: str) -> Job | None:
        raw = await self.redis.hgetall(job_key(job_id))
        if not raw or b"status" not in raw:
            return None
        return Job.from_hash(job_id, raw)

    async def set_status(
        self, job_id: str, status: str, *, detail: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        assert status in STATUSES, status
        now = repr(time.time())
        mapping: dict[str, str] = {"status": status, "detail": detail or ""}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job_id), mapping=mapping)
            event = {"status": status, "at": now}
            if detail:
                event["detail"] = detail
            if extra:
                event["data"] = json.dumps(extra, sort_keys=True)
            pipe.xadd(events_key(job_id), event, maxlen=EVENTS_MAXLEN, approximate=True)
            await pipe.execute()

    async def save_stage(self, job_id: str, stage: str, output: dict[str, Any], seconds: float) -> None:
        assert stage in STAGES, stage
        await self.redis.hset(
            job_key(job_id),
            mapping={f"stage:{stage}": json.dumps(output, sort_keys=True), f"time:{stage}": repr(seconds)},
        )

    async def fail(self, job_id: str, error: dict[str, Any]) -> None:
        await self.redis.hset(job_key(job_id), "error", json.dumps(error, sort_keys=True))
        await self.set_status(job_id, "failed", detail=error.get("message"), extra={"code": error.get("code")})

    async def bump_attempts(self, job_id: str) -> int:
        return int(await self.redis.hincrby(job_key(job_id), "attempts", 1))

    async def events(self, job_id: str, after: str = "0-0", count: int = 100) -> list[tuple[str, dict[str, str]]]:
        entries = await self.redis.xrange(events_key(job_id), min=f"({after}" if after != "0-0" else "-", count=count)
        return [(eid.decode(), {k.decode(): v.decode() for k, v in data.items()}) for eid, data in entries]
