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
from api.previews import PreviewSnapshot
from api.schemas import Links, MintAccepted, Problem
from api.state import ApiState, api_state
from api.tenancy import mint_limits, refuse_over_limit
from api.validation import check_context, check_json_media_type, parse_recipient
from config.collections import VoucherPolicy
from jobs.fairshare import PIPELINE_STATUSES
from jobs.keys import job_key
from jobs.model import JobError, JobStatus, Payer
from jobs.style_caps import StyleCapLedger

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

_JOB_ID = re.compile(rf"[A-Za-z0-9]{{1,{JOB_ID_MAX}}}")  # fullmatch: `$` matches before a trailing newline


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
            prefetch = job_key(job_id) if _JOB_ID.fullmatch(job_id) else None
        done = await authenticator.authenticate(request.headers.get("authorization"), prefetch)
        admit(request.scope, done, scope)
        require_json_body(request)  # who asks first: a bad key is a 401 whatever the body's type

    authorize.__name__ = f"requires_{scope}"
    return authorize


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def require_json_body(request: Request[Any, Any, Any]) -> None:
    """415 unless a request's body is declared JSON; every route that takes a body runs it before reading one.

    Authenticated routes run it in `requires` (after the credential); the public ones (SIWE
    sign-in) as their `before_request` hook (`json_body_only`); inbound webhooks after the signature.
    """
    if request.method not in _BODY_METHODS:
        return
    headers = request.headers
    has_body = (headers.get("content-length") or "0").strip().strip("0") != "" or "transfer-encoding" in headers
    check_json_media_type(headers.get("content-type"), has_body=has_body)


async def json_body_only(request: Request[Any, Any, Any]) -> None:
    """The `before_request` hook of a public route that takes a JSON body."""
    require_json_body(request)


def mint_links(job_id: str) -> Links:
    return Links(self=f"/v1/mints/{job_id}", events=f"/v1/mints/{job_id}/events")


def check_payer(policy: VoucherPolicy, collection: str, payer: Payer, voucher_ttl_s: int | None) -> None:
    """A collector-paid mint only where the collection's `[vouchers]` allows it, within its lifetime."""
    if payer is Payer.SERVICE:
        if voucher_ttl_s is not None:
            raise ApiError(400, "invalid_voucher_ttl", 'voucher_ttl_s applies only to "payer": "collector"')
        return
    if not policy.enabled:
        raise ApiError(
            403, "collector_payment_unavailable", f"collection {collection!r} does not take collector-paid mints"
        )
    if voucher_ttl_s is not None and voucher_ttl_s > policy.ttl_s:
        raise ApiError(
            400,
            "invalid_voucher_ttl",
            f"voucher_ttl_s is at most {policy.ttl_s} in collection {collection!r}",
            max_ttl_s=policy.ttl_s,
        )


async def previewed(
    state: ApiState, preview_id: str, collection: str, recipient: str, context: dict[str, Any]
) -> PreviewSnapshot:
    """The preview a mint names, when it is this mint's (collection, recipient, context)."""
    snapshot = await state.previews.snapshot(preview_id) if is_wellformed_id(preview_id, PREVIEW_ID_MAX, "-_") else None
    if snapshot is None:
        raise ApiError(404, "preview_not_found", "no such preview (previews expire: see expires_at); ask a new one")
    if (snapshot.collection, snapshot.recipient, snapshot.context) != (collection, recipient, context):
        raise ApiError(409, "preview_mismatch", "this preview was made for another collection, recipient or context")
    return snapshot


async def adopt_preview(state: ApiState, job_id: str, snapshot: PreviewSnapshot) -> None:
    """The new job takes the preview's profile and style (so its seed and pixels are the preview's),
    before any worker sees it; when the wallet's edition moved on since the preview (another mint
    came first), the job ends `preview_outdated` and the caller asks a new preview.

    In a collection with rarity caps the job reserves exactly the preview's choices (the preview
    only looked: it holds nothing, so previews can never crowd mints out of a rare trait); when
    one of them reached its cap since, the job ends `preview_outdated` too, and a new preview
    shows the next-best choice the wallet gets now.
    """
    jobs = state.core.jobs
    job = await jobs.get(job_id)
    if job is None or job.edition != snapshot.edition or job.seed != snapshot.seed:
        await jobs.fail(
            job_id,
            JobError(
                "preview_outdated",
                f"this wallet's next mint is no longer edition {snapshot.edition}; ask a new preview",
            ),
        )
        raise ApiError(
            409, "preview_outdated", "another mint to this wallet came first; ask a new preview", job_id=job_id
        )
    dna = state.core.collections[snapshot.collection]
    if dna.caps:
        params = snapshot.style.params
        refused = await StyleCapLedger(state.core.redis).reserve_exact(job_id, dna, params)
        if refused is not None:
            value = getattr(params, refused)
            await jobs.fail(
                job_id, JobError("preview_outdated", f"{refused} {value!r} reached its cap since the preview")
            )
            raise ApiError(
                409,
                "preview_outdated",
                f"{refused} {value!r} reached its rarity cap since this preview; ask a new preview",
                job_id=job_id,
                field=refused,
            )
    await jobs.save_stage(job_id, snapshot.profile, 0.0)
    await jobs.save_stage(job_id, snapshot.style, 0.0)


async def accept_mint(
    state: ApiState,
    caller: Caller,
    *,
    recipient_raw: object,
    collection: str,
    context: dict[str, Any],
    idempotency_key: str | None,
    payer: Payer = Payer.SERVICE,
    voucher_ttl_s: int | None = None,
    preview_id: str | None = None,
) -> tuple[MintAccepted, bool]:
    """Validate, limit, accept and enqueue one mint; returns (body, replayed). Shared by API and webhooks."""
    core = state.core
    if not isinstance(recipient_raw, str):
        raise ApiError(400, "invalid_address", "recipient must be a 0x address string")
    recipient = parse_recipient(recipient_raw)
    if collection not in core.collections:
        raise ApiError(404, "unknown_collection", f"collection {collection!r} does not exist")
    caller.require_collection(collection)
    if caller.address is not None and recipient != caller.address:
        raise ApiError(403, "recipient_not_allowed", "a wallet session may only mint to its own address")
    check_payer(core.vouchers[collection], collection, payer, voucher_ttl_s)
    checked_context = check_context(context, core.collections[collection].context_schema)
    snapshot = (
        None if preview_id is None else await previewed(state, preview_id, collection, recipient, checked_context)
    )
    limits = mint_limits(core, caller, collection)
    accepted = await core.jobs.accept(
        tenant=caller.tenant,
        recipient=recipient,
        collection=collection,
        context=checked_context,
        idempotency_key=idempotency_key,
        recipient_limit=state.recipient_limit,
        cap=limits.cap,
        daily_budget=limits.budget,
        payer=payer,
        voucher_ttl_s=voucher_ttl_s,
        preview_id=preview_id,
    )
    metrics = state.metrics
    metrics.mints.labels(accepted.outcome).inc()
    refuse_over_limit(accepted, limits, collection)
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
    created_at: float | None = None
    if accepted.outcome == "existing":
        job = await core.jobs.get(accepted.job_id)
        if job is None:  # Records expire long after idempotency keys; treat as gone.
            raise ApiError(409, "idempotency_conflict", "this Idempotency-Key's job no longer exists")
        status, created_at = job.status, job.created_at
    if snapshot is not None and accepted.outcome == "created":
        await adopt_preview(state, accepted.job_id, snapshot)
    if status in PIPELINE_STATUSES:
        # Into the tenant's share of the pipeline queue (jobs/fairshare.py). Submitting a live job
        # again is a no-op (keyed enqueue, or its place in the tenant's line); a stalled one revives.
        await core.fair.submit(core.fair_lane(caller.tenant, collection), accepted.job_id, created_at=created_at)
    # Accepted means it survives a failover: the job (and its place in line) is on the replicas too.
    await core.replication.confirm()
    log.info("mint %s %s", accepted.outcome, accepted.job_id, extra={"job_id": accepted.job_id})
    return MintAccepted(id=accepted.job_id, status=status, links=mint_links(accepted.job_id)), (
        accepted.outcome == "existing"
    )
