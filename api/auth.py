"""Who is calling: API keys (server to server) and SIWE sessions (a wallet), each scoped and rate limited.

One Lua script per request looks the credential up and charges its rate-limit bucket, so
authentication and the per-key limit cost a single Redis round trip, sent over the process's
auto-pipelined connection (api.redismux)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection

from api.errors import ApiError, rate_limited
from api.keys import KEY_PREFIX, SCOPES, SESSION_PREFIX, digest
from api.redismux import RedisMux
from jobs import lua
from jobs.keys import api_key_key, credential_rate_limit_key, session_key
from jobs.ratelimit import Decision, Limit

# Credential lookup + rate-limit charge (+ the job record prefetch) in one script: jobs/scripts/authenticate.lua.
_AUTHENTICATE = lua.load("authenticate")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. `tenant` is stable across key rotation; it scopes jobs and request ids."""

    tenant: str
    key_id: str
    scopes: frozenset[str] = frozenset(SCOPES)
    collections: frozenset[str] | None = None
    address: str | None = None  # set for SIWE sessions: the wallet that signed in
    kind: str = "api_key"

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(403, "insufficient_scope", f"this credential lacks the {scope!r} scope")

    def require_collection(self, collection: str) -> None:
        if self.collections is not None and collection not in self.collections:
            raise ApiError(403, "collection_not_allowed", f"this credential may not use collection {collection!r}")


def caller_from_record(record: dict[str, Any]) -> Caller:
    collections = record.get("collections")
    return Caller(
        tenant=record["tenant"],
        key_id=record["key_id"],
        scopes=frozenset(record.get("scopes") or SCOPES),
        collections=frozenset(collections) if collections is not None else None,
        address=record.get("address"),
        kind=record.get("kind", "api_key"),
    )


_HEAD = (b"tenant", b"status")  # the fields a head-only prefetch reads


# (caller, rate-limit decision, the bucket's burst, the prefetched hash)
Authentication = tuple[Caller, Decision, int, dict[bytes, bytes] | None]


def _unauthorized(code: str, detail: str) -> ApiError:
    return ApiError(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="personamint"'})


class Authenticator:
    """Resolves `Authorization: Bearer …` to a Caller and charges the caller's rate-limit bucket."""

    def __init__(self, redis: RedisMux, default_limit: Limit) -> None:
        self.redis = redis
        self.default_limit = default_limit
        self._callers: dict[bytes, Caller] = {}

    async def authenticate(
        self, authorization: str | None, prefetch: str | None = None, *, head_only: bool = False
    ) -> Authentication:
        """Returns (caller, rate-limit decision, the bucket's burst, the prefetched hash); raises 401 or 429.

        `prefetch` names a Redis hash to read in the same round trip once the caller is let in;
        with `head_only`, only its `tenant` and `status` fields (those present).
        """
        if not authorization:
            raise _unauthorized("missing_api_key", "Send 'Authorization: Bearer <api key or session token>'.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or len(token) > 200 or not token.isascii():
            raise _unauthorized("invalid_api_key", "The API key is not valid.")
        token_digest = digest(token)
        if token.startswith(SESSION_PREFIX):
            record_key = session_key(token_digest)
        elif token.startswith(KEY_PREFIX):
            record_key = api_key_key(token_digest)
        else:
            raise _unauthorized("invalid_api_key", "The API key is not valid.")
        keys = [record_key, credential_rate_limit_key(token_digest)]
        if prefetch is not None:
            keys.append(prefetch)
        result = await self.redis.eval_script(
            _AUTHENTICATE, keys, [self.default_limit.interval_ms, self.default_limit.burst, "head" if head_only else ""]
        )
        if int(result[0]) == 0:
            if token.startswith(SESSION_PREFIX):
                raise _unauthorized("invalid_session", "The session is not valid or has expired; sign in again.")
            raise _unauthorized("invalid_api_key", "The API key is not valid.")
        raw_record: bytes = result[1]
        caller = self._callers.get(raw_record)
        if caller is None:
            # Parsed once per distinct record (the record itself is fetched on every request).
            caller = caller_from_record(json.loads(raw_record))
            if len(self._callers) >= 10_000:
                self._callers.clear()
            self._callers[raw_record] = caller
        decision = Decision(
            allowed=bool(int(result[2])), retry_after_s=int(result[3]) / 1000.0, remaining=int(result[4])
        )
        burst = int(result[5])
        if not decision.allowed:
            raise rate_limited(
                "rate_limited",
                "Too many requests for this credential; slow down.",
                decision,
                headers={"RateLimit-Limit": str(burst)},
            )
        prefetched = None
        if len(result) > 6:
            flat = result[6]
            if head_only:
                prefetched = {name: value for name, value in zip(_HEAD, flat, strict=True) if value is not None}
            else:
                prefetched = dict(zip(flat[::2], flat[1::2], strict=True))
        return caller, decision, burst, prefetched


# Scope key: a refusal decided before routing, raised by the route's hook (api.routes.common.requires).
REFUSED = "pm_refused"


def admit(asgi_scope: Any, done: Authentication, scope: str) -> Caller:
    """Check the scope and leave the caller, the prefetched record and the rate-limit headers in the ASGI scope."""
    caller, decision, burst, prefetched = done
    caller.require(scope)
    # The scope's state dict directly: `request.state` builds a wrapper on every access.
    state = asgi_scope.setdefault("state", {})
    state["caller"] = caller
    state["prefetched_job"] = prefetched
    asgi_scope.setdefault("pm_headers", {}).update(
        {"RateLimit-Limit": str(burst), "RateLimit-Remaining": str(decision.remaining)}
    )
    return caller


def caller_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    caller: Caller = connection.scope["state"]["caller"]
    return caller


def prefetched_of(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[bytes, bytes] | None:
    prefetched: dict[bytes, bytes] | None = connection.scope["state"].get("prefetched_job")
    return prefetched
