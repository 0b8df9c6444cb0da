"""The status fast path: GET /v1/mints/{id} answered in front of the router."""

from __future__ import annotations

import re
from typing import Any, cast

import msgspec
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth import REFUSED, admit
from api.metrics import header_value
from api.routes.common import JOB_ID_MAX
from api.routes.mints import STATUS_ROUTE, owned_job, status_view
from api.state import api_state
from jobs.keys import job_key
from jobs.model import TERMINAL

_TERMINAL_BYTES = frozenset(status.encode() for status in TERMINAL)


_STATUS_PATH = re.compile(rf"/v1/mints/([A-Za-z0-9]{{1,{JOB_ID_MAX}}})")


class StatusReads:
    """`GET /v1/mints/{id}` answered in front of the router: the API's hottest read, polled by every caller.

    The same work as `get_mint` (one Redis round trip for auth, rate limit and the record; the same
    view and JSON), minus Litestar's per-route machinery, which cost more than the read itself.
    Only a 200 is answered here: any refusal (401, 403, 404, 429, Redis down) is left in the scope
    and handed to the router, whose hook raises it, so every error is the one problem document
    the schema describes and the rate-limit bucket is charged once.
    """

    # Ended records (confirmed, failed) never change again (the job scripts refuse any write
    # that would move them), so their answer is kept: a read then fetches only the record's
    # owner and status, to check it still exists and is the caller's, instead of the whole
    # record (every stage's output) to decode, shape and encode again.
    ENDED_CACHE_SIZE = 10_000

    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        self.app = app
        self.litestar = litestar
        self.ended: dict[str, tuple[bytes, bytes]] = {}  # job id → (tenant, encoded answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = cast(dict[str, Any], scope)
        if raw["type"] == "http" and raw["method"] == "GET":
            match = _STATUS_PATH.fullmatch(raw["path"])
            if match is not None:
                body = await self._read(raw, match.group(1))
                if body is not None:
                    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                    return
        await self.app(scope, receive, send)

    async def _read(self, scope: dict[str, Any], job_id: str) -> bytes | None:
        state = api_state(self.litestar)
        kept = self.ended.get(job_id)
        try:
            authorization = header_value(cast(Scope, scope), b"authorization")
            done = await state.authenticator.authenticate(authorization, job_key(job_id), head_only=kept is not None)
            caller = admit(scope, done, "read")
            if kept is not None:
                head = done[3] or {}
                tenant = caller.tenant.encode()
                if kept[0] == tenant == head.get(b"tenant") and head.get(b"status") in _TERMINAL_BYTES:
                    scope["path_template"] = STATUS_ROUTE
                    return kept[1]
                self.ended.pop(job_id, None)
                job = await owned_job(state.core, caller, job_id)  # another owner, or gone: the full check
            else:
                job = await owned_job(state.core, caller, job_id, done[3])
            body = msgspec.json.encode(status_view(job, state.public_url))
        except Exception as exc:  # noqa: BLE001 - every refusal goes to the router's error handling
            scope[REFUSED] = exc
            return None
        if job.status.ended:
            if len(self.ended) >= self.ENDED_CACHE_SIZE:
                del self.ended[next(iter(self.ended))]  # the oldest kept
            self.ended[job_id] = (job.tenant.encode(), body)
        scope["path_template"] = STATUS_ROUTE
        return body
