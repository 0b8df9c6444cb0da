"""Mint routes: accept a mint, read its status, stream its events."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api.auth import Caller, caller_of, prefetched_of
from api.errors import ApiError, rate_limited
from api.events import job_events, parse_last_event_id
from api.routes.common import (
    JOB_ID_MAX,
    IdempotencyKeyHeader,
    accept_mint,
    is_wellformed_id,
    mint_links,
    problem_responses,
    requires,
)
from api.schemas import (
    JobError,
    MintAccepted,
    MintRequest,
    MintStatus,
    Voucher,
)
from api.state import api_state
from api.streams import RETRY_AFTER_S as STREAM_RETRY_AFTER_S
from api.validation import parse_idempotency_key
from config.clients import Core
from jobs.codec import decode_job
from jobs.model import Job, Payer, VoucherStage
from jobs.ratelimit import Limit
from personalization.profile import WalletProfile

STATUS_ROUTE = "/v1/mints/{job_id:str}"


# A status answer shows the profile without who and where it is of and the caller's own context,
# and the profile and the params with their keys sorted, as their saved documents have them (the
# nested dicts come sorted from those documents).
_SHOWN_PROFILE_FIELDS = tuple(
    sorted(
        field.name
        for field in dataclasses.fields(WalletProfile)
        if field.name not in ("address", "chain_id", "context")
    )
)


def status_view(job: Job, public_url: str) -> MintStatus:
    view = MintStatus(
        id=job.id,
        status=job.status,
        recipient=job.recipient,
        collection=job.collection,
        edition=job.edition,
        request_id=job.request_id,
        created_at=job.created_at,
        links=mint_links(job.id),
        detail=job.detail,
        timings={stage: round(seconds, 4) for stage, seconds in job.timings.items()},
    )
    if (profile := job.profile) is not None:
        view.profile = {name: getattr(profile, name) for name in _SHOWN_PROFILE_FIELDS}
    if (style := job.style) is not None:
        # As the canonical JSON has them: a seal only where context set one.
        view.style = dict(sorted(style.params.to_dict().items()))
        view.persona = style.persona
    if (pin := job.pin) is not None:
        view.token_uri = pin.token_uri
        view.image_uri = pin.image_uri
        view.image_url = f"{public_url}/ipfs/{pin.image_cid}"
        view.metadata_url = f"{public_url}/ipfs/{pin.metadata_cid}"
    if (mint := job.mint) is not None:
        view.token_id = mint.token_id
        view.tx_hash = mint.tx_hash
        view.block_number = mint.block_number
        view.contract = mint.contract
        view.chain_id = mint.chain_id
    if job.error is not None:
        view.error = JobError(code=job.error.code, message=job.error.message)
    if job.payer is Payer.COLLECTOR:
        view.payer = job.payer
    if (voucher := job.voucher) is not None:
        view.voucher = voucher_view(voucher)
        view.contract, view.chain_id = voucher.contract, voucher.chain_id
    return view


def voucher_view(voucher: VoucherStage) -> Voucher:
    return Voucher(
        recipient=voucher.recipient,
        request_id=voucher.request_id,
        digest=voucher.digest,
        codec=voucher.codec,
        price_wei=str(voucher.price_wei),
        deadline=voucher.deadline,
        signature=voucher.signature,
        signer=voucher.signer,
        contract=voucher.contract,
        chain_id=voucher.chain_id,
        transaction={"to": voucher.contract, "data": voucher.call_data, "value": hex(voucher.price_wei)},
    )


async def owned_job(core: Core, caller: Caller, job_id: str, prefetched: dict[bytes, bytes] | None = None) -> Job:
    job = None
    if prefetched is not None:
        job = decode_job(job_id, prefetched) if b"status" in prefetched else None
    elif is_wellformed_id(job_id, JOB_ID_MAX):
        job = await core.jobs.get(job_id)
    if job is None or job.tenant != caller.tenant:
        raise ApiError(404, "job_not_found", "no such mint for this caller")
    return job


@post(
    "/v1/mints",
    status_code=202,
    summary="Accept a personalized mint",
    before_request=requires("mint"),
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 429, 503),
    security=[{"bearer": []}],
)
async def create_mint(
    request: Request[Any, Any, Any], data: JSONBody[MintRequest], idempotency_key: IdempotencyKeyHeader = None
) -> Response[MintAccepted]:
    key = parse_idempotency_key(idempotency_key)
    body, replayed = await accept_mint(
        api_state(request.app),
        caller_of(request),
        recipient_raw=data.recipient,
        collection=data.collection,
        context=data.context,
        idempotency_key=key,
        payer=Payer(data.payer),
        voucher_ttl_s=data.voucher_ttl_s,
        preview_id=data.preview_id,
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
    state = api_state(request.app)
    job = await owned_job(state.core, caller_of(request), job_id, prefetched_of(request))
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
    state = api_state(request.app)
    after = parse_last_event_id(last_event_id)
    caller = caller_of(request)
    await owned_job(state.core, caller, job_id)
    metrics = state.metrics
    redis = state.core.redis
    settings = state.core.settings
    # Opening a stream costs the API far more than a status read (lease, replay, the hub's
    # subscription): a credential's opens are rate limited on their own, so a client that
    # reconnects at once, again and again, cannot take the API's CPU from other tenants.
    opens = Limit.per_minute(settings.sse_stream_opens_per_min, settings.sse_stream_open_burst)
    decision = await state.limiter.hit((f"sse-open:{caller.tenant}:{caller.key_id}", opens))
    if not decision.allowed:
        metrics.rate_limited.labels("stream").inc()
        raise rate_limited(
            "stream_rate_limited", "too many event streams opened by this credential; slow down", decision
        )
    leases = state.stream_leases
    lease = await leases.acquire(caller.tenant, caller.key_id)
    if lease is None:
        raise ApiError(
            429,
            "too_many_streams",
            f"this credential already holds {state.core.settings.sse_streams_per_credential} open event streams",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
        )
    keepalive_s = state.core.settings.sse_keepalive_s

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        leases.started(lease)
        metrics.sse_streams.inc()
        try:
            async for message in job_events(redis, state.streams, job_id, after, keepalive_s=keepalive_s):
                yield message
        finally:
            metrics.sse_streams.dec()
            leases.release(lease)

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


HANDLERS = (create_mint, get_mint, mint_events)
