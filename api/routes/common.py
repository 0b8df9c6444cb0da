"""What several route modules share: the auth hook, id checks, problem responses, and accepting a mint."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar import Request
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter

from api.auth import REFUSED, Caller, admit
from api.errors import ApiError
from api.schemas import Links, MintAccepted, Problem
from api.state import ApiState, api_state
from api.validation import check_context, parse_recipient
from jobs.keys import job_key
from jobs.model import TERMINAL, JobStatus
from jobs.queues import enqueue_pipeline

log = logging.getLogger("personamint.api")

IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Same key + same body → the same result; same key + another body → 409. Kept 24 h.",
    ),
]

JOB_ID_MAX = 64
DELIVERY_ID_MAX = 80
PREVIEW_ID_MAX = 64

_JOB_ID = re.compile(rf"^[A-Za-z0-9]{{1,{JOB_ID_MAX}}}$")


def is_wellformed_id(value: str, max_length: int, extra_chars: str = "") -> bool:
    """ASCII letters and digits (and `extra_chars`), 1 to `max_length` long: checked before any Redis key is built."""
    if not 0 < len(value) <= max_length or not value.isascii():
        return False
    return value.isalnum() or all(c.isalnum() or c in extra_chars for c in value)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI entries for the problem documents a route may answer with."""
    return {
        status: ResponseSpec(data_container=Problem, media_type="application/problem+json", description="Problem")
        for status in statuses
    }


def requires(scope: str, *, prefetch_job: bool = False) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A `before_request` hook: authenticate, charge the bucket, check the scope; the Caller lands in state.

    A hook rather than a Litestar guard: it runs at the same point (before the body is parsed,
    so a bad key is a 401 whatever the body), but Litestar copies the route handler for every
    guard call, which is a measurable part of a status read. With `prefetch_job`, the route's
    `{job_id}` record is read in the same Redis round trip and left in state as `prefetched_job`.
    """

    async def authorize(request: Request[Any, Any, Any]) -> None:
        # Refused by the layer in front of the router (api.status_reads.StatusReads): raised here,
        # so the refusal becomes the same problem document, and the bucket is not charged twice.
        refused: BaseException | None = request.scope.pop(REFUSED, None)  # type: ignore[misc]
        if refused is not None:
            raise refused
        authenticator = api_state(request.app).authenticator
        prefetch = None
        if prefetch_job:
            job_id = request.path_params.get("job_id", "")
            prefetch = job_key(job_id) if _JOB_ID.match(job_id) else None
        done = await authenticator.authenticate(request.headers.get("authorization"), prefetch)
        admit(request.scope, done, scope)

    authorize.__name__ = f"requires_{scope}"
    return authorize


def mint_links(job_id: str) -> Links:
    return Links(self=f"/v1/mints/{job_id}", events=f"/v1/mints/{job_id}/events")


async def accept_mint(
    state: ApiState,
    caller: Caller,
    *,
    recipient_raw: object,
    collection: str,
    context: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[MintAccepted, bool]:
    """Validate, limit, accept and enqueue one mint; returns (body, replayed). Shared by API and webhooks."""
    core = state.core
    settings = core.settings
    if not isinstance(recipient_raw, str):
        raise ApiError(400, "invalid_address", "recipient must be a 0x address string")
    recipient = parse_recipient(recipient_raw)
    if collection not in core.collections:
        raise ApiError(404, "unknown_collection", f"collection {collection!r} does not exist")
    caller.require_collection(collection)
    if caller.address is not None and recipient != caller.address:
        raise ApiError(403, "recipient_not_allowed", "a wallet session may only mint to its own address")
    accepted = await core.jobs.accept(
        tenant=caller.tenant,
        recipient=recipient,
        collection=collection,
        context=check_context(context),
        idempotency_key=idempotency_key,
        recipient_limit=state.recipient_limit,
        cap=core.wallet_caps.get(collection, 0),
    )
    metrics = state.metrics
    metrics.mints.labels(accepted.outcome).inc()
    if accepted.outcome == "conflict":
        raise ApiError(
            409, "idempotency_conflict", "this Idempotency-Key was used with a different body", job_id=accepted.job_id
        )
    if accepted.outcome == "rate_limited":
        metrics.rate_limited.labels("recipient").inc()
        retry = max(1, int(accepted.retry_after_s + 0.999))
        raise ApiError(
            429,
            "recipient_rate_limited",
            "too many mints for this recipient; retry later",
            headers={"Retry-After": str(retry)},
            retry_after_s=round(accepted.retry_after_s, 3),
        )
    if accepted.outcome == "cap_reached":
        raise ApiError(
            409,
            "mint_cap_reached",
            f"this wallet already has the most mints collection {collection!r} allows ({accepted.cap})",
            cap=accepted.cap,
        )
    status: str = JobStatus.QUEUED
    if accepted.outcome == "existing":
        job = await core.jobs.get(accepted.job_id)
        if job is None:  # Records expire long after idempotency keys; treat as gone.
            raise ApiError(409, "idempotency_conflict", "this Idempotency-Key's job no longer exists")
        status = job.status
    if status not in TERMINAL:
        # Re-enqueueing a live job is a no-op (keyed); re-enqueueing a stalled one revives it.
        await enqueue_pipeline(core.pipeline_queue, settings, accepted.job_id)
    log.info("mint %s %s", accepted.outcome, accepted.job_id, extra={"job_id": accepted.job_id})
    return MintAccepted(id=accepted.job_id, status=status, links=mint_links(accepted.job_id)), (
        accepted.outcome == "existing"
    )
