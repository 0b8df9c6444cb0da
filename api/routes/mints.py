"""Mint routes: accept a mint, read its status, stream its events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.response import ServerSentEvent

from api.auth import Caller, caller_of, prefetched_of, requires
from api.errors import ApiError
from api.events import job_events, parse_last_event_id
from api.routes.common import JOB_ID_MAX, IdempotencyKey, core_of, metrics_of, problem_responses, valid_id
from api.schemas import (
    JobError,
    Links,
    MintAccepted,
    MintRequest,
    MintStatus,
)
from api.validation import check_context, parse_idempotency_key, parse_recipient
from config.clients import Core
from jobs.queues import enqueue_pipeline
from jobs.store import TERMINAL, Job

log = logging.getLogger("personamint.api")


STATUS_ROUTE = "/v1/mints/{job_id:str}"


def links(job_id: str) -> Links:
    return Links(self=f"/v1/mints/{job_id}", events=f"/v1/mints/{job_id}/events")


def status_view(job: Job, public_url: str) -> MintStatus:
    view = MintStatus(
        id=job.id,
        status=job.status,
        recipient=job.recipient,
        collection=job.collection,
        edition=job.edition,
        request_id=job.request_id,
        created_at=job.created_at,
        links=links(job.id),
        detail=job.detail,
        timings={stage: round(seconds, 4) for stage, seconds in job.timings.items()},
    )
    if profile := job.stages.get("profile"):
        view.profile = {k: v for k, v in profile.items() if k not in ("address", "chain_id", "context")}
    if style := job.stages.get("style"):
        view.style = style["params"]
        view.persona = style["persona"]
    if pin := job.stages.get("pin"):
        view.token_uri = pin["token_uri"]
        view.image_uri = pin["image_uri"]
        view.image_url = f"{public_url}/ipfs/{pin['image_cid']}"
        view.metadata_url = f"{public_url}/ipfs/{pin['metadata_cid']}"
    if mint := job.stages.get("mint"):
        view.token_id = mint["token_id"]
        view.tx_hash = mint["tx_hash"]
        view.block_number = mint["block_number"]
        view.contract = mint["contract"]
        view.chain_id = mint["chain_id"]
    if job.error:
        view.error = JobError(code=job.error.get("code", "internal_error"), message=job.error.get("message", ""))
    return view


async def owned_job(core: Core, caller: Caller, job_id: str, prefetched: dict[bytes, bytes] | None = None) -> Job:
    job = None
    if prefetched is not None:
        job = Job.from_hash(job_id, prefetched) if b"status" in prefetched else None
    elif valid_id(job_id, JOB_ID_MAX):
        job = await core.jobs.get(job_id)
    if job is None or job.tenant != caller.tenant:
        raise ApiError(404, "job_not_found", "no such mint for this caller")
    return job


async def accept_mint(
    state: State,
    caller: Caller,
    *,
    recipient_raw: Any,
    collection: str,
    context: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[MintAccepted, bool]:
    """Validate, limit, accept and enqueue one mint; returns (body, replayed). Shared by API and webhooks."""
    core = core_of(state)
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
    metrics = metrics_of(state)
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
    status = "queued"
    if accepted.outcome == "existing":
        job = await core.jobs.get(accepted.job_id)
        if job is None:  # Records expire long after idempotency keys; treat as gone.
            raise ApiError(409, "idempotency_conflict", "this Idempotency-Key's job no longer exists")
        status = job.status
    if status not in TERMINAL:
        # Re-enqueueing a live job is a no-op (keyed); re-enqueueing a stalled one revives it.
        await enqueue_pipeline(core.pipeline_queue, settings, accepted.job_id)
    log.info("mint %s %s", accepted.outcome, accepted.job_id, extra={"job_id": accepted.job_id})
    return MintAccepted(id=accepted.job_id, status=status, links=links(accepted.job_id)), (
        accepted.outcome == "existing"
    )


@post(
    "/v1/mints",
    status_code=202,
    summary="Accept a personalized mint",
    before_request=requires("mint"),
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
    security=[{"bearer": []}],
)
async def create_mint(
    request: Request[Any, Any, Any], data: JSONBody[MintRequest], idempotency_key: IdempotencyKey = None
) -> Response[MintAccepted]:
    state = request.app.state
    key = parse_idempotency_key(idempotency_key)
    body, replayed = await accept_mint(
        state,
        caller_of(request),
        recipient_raw=data.recipient,
        collection=data.collection,
        context=data.context,
        idempotency_key=key,
    )
    headers = {"Location": body.links.self}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(body, status_code=202, headers=headers)


@get(
    STATUS_ROUTE,
    summary="A mint's status",
    before_request=requires("read", prefetch_job=True),
    responses=problem_responses(401, 403, 404, 429),
    security=[{"bearer": []}],
)
async def get_mint(request: Request[Any, Any, Any], job_id: FromPath[str]) -> MintStatus:
    state = request.app.state
    job = await owned_job(core_of(state), caller_of(request), job_id, prefetched_of(request))
    return status_view(job, state.public_url)


@get(
    "/v1/mints/{job_id:str}/events",
    summary="Live progress (server-sent events); reconnect with Last-Event-ID to resume",
    before_request=requires("read"),
    responses=problem_responses(400, 401, 403, 404, 429),
    security=[{"bearer": []}],
)
async def mint_events(
    request: Request[Any, Any, Any],
    job_id: FromPath[str],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
) -> ServerSentEvent:

    state = request.app.state
    after = parse_last_event_id(last_event_id)
    await owned_job(core_of(state), caller_of(request), job_id)
    metrics = metrics_of(state)
    redis = core_of(state).redis

    async def stream() -> AsyncIterator[Any]:
        metrics.sse_streams.inc()
        try:
            async for message in job_events(redis, job_id, after):
                yield message
        finally:
            metrics.sse_streams.dec()

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
