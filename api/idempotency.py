"""Stripe-style Idempotency-Key for POSTs that are not mints (mints do it inside JobStore.accept).

Same key + same body → the first response again (`Idempotent-Replayed: true`); same key + another
body → 409; the same key while the first request still runs → 409 `idempotency_in_progress`.
Records live 24 h. Only successful (2xx) responses are stored: a refused or failed request
releases the key so the caller can fix the request and retry with it, as Stripe does for
requests that never started executing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response
from redis.asyncio import Redis

from api.errors import ApiError
from jobs import lua
from jobs.keys import request_idempotency_key
from jobs.store import IDEMPOTENCY_TTL_S

PENDING_TTL_S = 120


def body_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._begin = lua.register(redis, "idempotency_begin")

    async def run(
        self,
        *,
        operation: str,
        caller: str,
        key: str | None,
        payload: Any,
        produce: Callable[[], Awaitable[tuple[int, Any]]],
    ) -> Response[Any]:
        """Run `produce` once per (operation, caller, key); returns a JSON Response."""
        if key is None:
            status, body = await produce()
            return Response(body, status_code=status)
        record_key = request_idempotency_key(operation, caller, key)
        fingerprint = body_hash(payload)
        found = await self._begin(keys=[record_key], args=[fingerprint, PENDING_TTL_S])
        outcome = found[0].decode()
        if outcome == "conflict":
            raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used with a different body")
        if outcome == "in_progress":
            raise ApiError(
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still running; retry shortly",
                headers={"Retry-After": "1"},
            )
        if outcome == "done":
            stored = json.loads(found[1])
            return Response(
                stored["response"], status_code=int(stored["status"]), headers={"Idempotent-Replayed": "true"}
            )
        try:
            status, body = await produce()
        except BaseException:
            await self.redis.delete(record_key)
            raise
        if 200 <= status < 300:
            encoded = json.loads(json.dumps(body, default=_plain))
            record = {"state": "done", "body": fingerprint, "status": status, "response": encoded}
            await self.redis.set(record_key, json.dumps(record), ex=IDEMPOTENCY_TTL_S)
            return Response(encoded, status_code=status)
        await self.redis.delete(record_key)
        return Response(body, status_code=status)


def _plain(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)
