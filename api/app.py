"""The Litestar app: routes, guards, error handlers and the lifespan that owns the clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast
from urllib.parse import urlsplit

import msgspec
from eth_account import Account
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth import REFUSED, Authenticator, Caller, admit, caller_of, prefetched_of, requires
from api.errors import EXCEPTION_HANDLERS, ApiError
from api.events import job_events, parse_last_event_id
from api.idempotency import IdempotencyStore
from api.jobs import TERMINAL, Job, Reconciler, job_key
from api.metrics import Metrics, RequestContext, content_type, header_value
from api.previews import PreviewDeps, PreviewService
from api.queue import enqueue_mint, enqueue_pipeline
from api.ratelimit import Limit, RateLimiter
from api.redismux import RedisMux
from api.schemas import (
    Delivery,
    DeliveryAttempt,
    DeliveryList,
    Health,
    JobError,
    Links,
    MintAccepted,
    MintRequest,
    MintStatus,
    Nonce,
    PreviewRequest,
    Problem,
    ProfileView,
    Ready,
    SessionView,
    SiweRequest,
    WebhookAccepted,
)
from api.services import Core, build_personalizer
from api.settings import Settings
from api.siwe import ContractWallets, SiwePolicy, SiweService
from api.validation import check_context, parse_idempotency_key, parse_recipient
from api.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryStore,
    RetryPolicy,
    WebhookDeliverer,
    inbound_dedup_key,
    parse_inbound,
    set_endpoint,
    verify_signature,
)
from chain.ipfs import is_cid
from personalization.rpc import JsonRpcClient

log = logging.getLogger("personamint.api")

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Same key + same body → the same result; same key + another body → 409. Kept 24 h.",
    ),
]
_JOB_ID_MAX = 64
BENCH_PATH = "/_bench/bare"
STATUS_ROUTE = "/v1/mints/{job_id:str}"
_TERMINAL_BYTES = frozenset(status.encode() for status in TERMINAL)
_STATUS_PATH = re.compile(rf"/v1/mints/([A-Za-z0-9]{{1,{_JOB_ID_MAX}}})")
_DELIVERY_ID_MAX = 80


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(data_container=Problem, media_type="application/problem+json", description="Problem")
        for status in statuses
    }


def _core(state: State) -> Core:
    core: Core = state.core
    return core


def _metrics(state: State) -> Metrics:
    metrics: Metrics = state.metrics
    return metrics


def _links(job_id: str) -> Links:
    return Links(self=f"/v1/mints/{job_id}", events=f"/v1/mints/{job_id}/events")


def _status_view(job: Job, public_url: str) -> MintStatus:
    view = MintStatus(
        id=job.id,
        status=job.status,
        recipient=job.recipient,
        collection=job.collection,
        edition=job.edition,
        request_id=job.request_id,
        created_at=job.created_at,
        links=_links(job.id),
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


def _valid_id(value: str, limit: int, extra: str = "") -> bool:
    if not 0 < len(value) <= limit or not value.isascii():
        return False
    return value.isalnum() or all(c.isalnum() or c in extra for c in value)


async def _owned_job(core: Core, caller: Caller, job_id: str, prefetched: dict[bytes, bytes] | None = None) -> Job:
    job = None
    if prefetched is not None:
        job = Job.from_hash(job_id, prefetched) if b"status" in prefetched else None
    elif _valid_id(job_id, _JOB_ID_MAX):
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
    core = _core(state)
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
    metrics = _metrics(state)
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
    return MintAccepted(id=accepted.job_id, status=status, links=_links(accepted.job_id)), (
        accepted.outcome == "existing"
    )


# --- mints -----------------------------------------------------------------------------------


@post(
    "/v1/mints",
    status_code=202,
    summary="Accept a personalized mint",
    before_request=requires("mint"),
    responses=_problems(400, 401, 403, 404, 409, 413, 429, 503),
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
    responses=_problems(401, 403, 404, 429),
    security=[{"bearer": []}],
)
async def get_mint(request: Request[Any, Any, Any], job_id: FromPath[str]) -> MintStatus:
    state = request.app.state
    job = await _owned_job(_core(state), caller_of(request), job_id, prefetched_of(request))
    return _status_view(job, state.public_url)


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
        state = self.litestar.state
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
                job = await _owned_job(state.core, caller, job_id)  # another owner, or gone: the full check
            else:
                job = await _owned_job(state.core, caller, job_id, done[3])
            body = msgspec.json.encode(_status_view(job, state.public_url))
        except Exception as exc:  # noqa: BLE001 - every refusal goes to the router's error handling
            scope[REFUSED] = exc
            return None
        if job.status in TERMINAL:
            if len(self.ended) >= self.ENDED_CACHE_SIZE:
                del self.ended[next(iter(self.ended))]  # the oldest kept
            self.ended[job_id] = (job.tenant.encode(), body)
        scope["path_template"] = STATUS_ROUTE
        return body


@get(
    "/v1/mints/{job_id:str}/events",
    summary="Live progress (server-sent events); reconnect with Last-Event-ID to resume",
    before_request=requires("read"),
    responses=_problems(400, 401, 403, 404, 429),
    security=[{"bearer": []}],
)
async def mint_events(
    request: Request[Any, Any, Any],
    job_id: FromPath[str],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
) -> ServerSentEvent:
    state = request.app.state
    after = parse_last_event_id(last_event_id)
    await _owned_job(_core(state), caller_of(request), job_id)
    metrics = _metrics(state)
    redis = _core(state).redis

    async def stream() -> AsyncIterator[Any]:
        metrics.sse_streams.inc()
        try:
            async for message in job_events(redis, job_id, after):
                yield message
        finally:
            metrics.sse_streams.dec()

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- previews and profiles -----------------------------------------------------------------


@post(
    "/v1/previews",
    status_code=200,
    summary="Render the image the recipient's next mint will get, without minting",
    before_request=requires("preview"),
    responses=_problems(400, 401, 403, 404, 409, 413, 429, 503),
    security=[{"bearer": []}],
)
async def create_preview(
    request: Request[Any, Any, Any], data: JSONBody[PreviewRequest], idempotency_key: IdempotencyKey = None
) -> Response[Any]:
    state = request.app.state
    caller = caller_of(request)
    key = parse_idempotency_key(idempotency_key)
    recipient = parse_recipient(data.recipient)
    core = _core(state)
    if data.collection not in core.collections:
        raise ApiError(404, "unknown_collection", f"collection {data.collection!r} does not exist")
    caller.require_collection(data.collection)
    context = check_context(data.context)
    previews: PreviewService = state.previews

    async def produce() -> tuple[int, Any]:
        view = await previews.preview(recipient, data.collection, context)
        _metrics(state).previews.labels(str(view["cached"]).lower()).inc()
        return 200, view

    payload = {"recipient": recipient, "collection": data.collection, "context": context}
    idem: IdempotencyStore = state.idempotency
    return await idem.run(operation="preview", caller=caller.tenant, key=key, payload=payload, produce=produce)


@get(
    "/v1/previews/{preview_id:str}/image",
    summary="A preview's PNG (an unguessable, expiring link)",
    responses=_problems(404),
    media_type="image/png",
)
async def preview_image(request: Request[Any, Any, Any], preview_id: FromPath[str]) -> Response[bytes]:
    state = request.app.state
    previews: PreviewService = state.previews
    png = await previews.image(preview_id) if _valid_id(preview_id, 64, "-_") else None
    if png is None:
        raise ApiError(404, "preview_not_found", "no such preview (they expire)")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@get(
    "/v1/profiles/{address:str}",
    summary="A wallet's profile and the style it gets in a collection",
    before_request=requires("read"),
    responses=_problems(400, 401, 403, 404, 429, 503),
    security=[{"bearer": []}],
)
async def get_profile(
    request: Request[Any, Any, Any],
    address: FromPath[str],
    collection: Annotated[str, QueryParameter(name="collection", max_length=64)] = "default",
) -> ProfileView:
    state = request.app.state
    wallet = parse_recipient(address)
    core = _core(state)
    if collection not in core.collections:
        raise ApiError(404, "unknown_collection", f"collection {collection!r} does not exist")
    caller_of(request).require_collection(collection)
    cache_key = f"pm:cache:profile-view:{collection}:{wallet.lower()}"
    cached = await core.redis.get(cache_key)
    if cached is not None:
        view = msgspec.json.decode(cached, type=ProfileView)
        view.cached = True
        return view
    previews: PreviewService = state.previews
    found = await previews.profile_and_style(wallet, collection)
    view = ProfileView(**found)
    await core.redis.set(cache_key, msgspec.json.encode(view), ex=core.settings.preview_cache_ttl_s)
    return view


# --- sign-in with Ethereum -----------------------------------------------------------------


@get("/v1/auth/nonce", summary="A single-use nonce for a Sign-In with Ethereum message")
async def siwe_nonce(request: Request[Any, Any, Any]) -> Nonce:
    state = request.app.state
    siwe: SiweService = state.siwe
    nonce, expires_at = await siwe.new_nonce()
    return Nonce(
        nonce=nonce,
        expires_at=expires_at,
        domain=siwe.policy.domain,
        uri=siwe.policy.uri,
        chain_id=siwe.policy.chain_id,
    )


@post(
    "/v1/auth/siwe",
    status_code=201,
    summary="Exchange a signed EIP-4361 message for a session token",
    description=(
        "The nonce makes this request single-use: an Idempotency-Key is accepted but a replay is "
        "refused (replaying a sign-in would hand out a second session)."
    ),
    responses=_problems(400, 401, 413, 429, 503),
)
async def siwe_sign_in(
    request: Request[Any, Any, Any], data: JSONBody[SiweRequest], idempotency_key: IdempotencyKey = None
) -> SessionView:
    state = request.app.state
    parse_idempotency_key(idempotency_key)
    siwe: SiweService = state.siwe
    session = await siwe.sign_in(data.message, data.signature)
    return SessionView(
        token=session.token,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a password
        address=session.address,
        expires_at=session.expires_at,
        tenant=f"wallet:{session.address}",
    )


# --- webhooks ----------------------------------------------------------------------------------


@post(
    "/v1/webhooks/{source:str}",
    status_code=202,
    summary="Inbound reward webhook: a signed event becomes a mint",
    description=(
        f"Signed with {SIGNATURE_HEADER}: v1=<hex HMAC-SHA256(secret, '<timestamp>.' + body)> and "
        f"{TIMESTAMP_HEADER}: <unix seconds>. Body: {{'id', 'type', 'data'}}; the event id is the "
        "idempotency key (a replayed id is refused with 409)."
    ),
    responses=_problems(400, 401, 404, 409, 413, 429, 503),
)
async def inbound_webhook(request: Request[Any, Any, Any], source: FromPath[str]) -> Response[WebhookAccepted]:
    state = request.app.state
    settings: Settings = _core(state).settings
    config = settings.webhook_sources.get(source)
    metrics = _metrics(state)
    if config is None:
        raise ApiError(404, "unknown_webhook_source", "no webhook source by that name")
    body = await request.body()
    verify_signature(
        config.secret.get_secret_value(),
        request.headers.get(TIMESTAMP_HEADER),
        request.headers.get(SIGNATURE_HEADER),
        body,
        tolerance_s=config.tolerance_s,
        now=time.time(),
    )
    limiter: RateLimiter = state.limiter
    decision = await limiter.hit((f"source:{source}", state.key_limit))
    if not decision.allowed:
        metrics.rate_limited.labels("source").inc()
        raise ApiError(
            429,
            "rate_limited",
            "too many events from this source",
            headers={"Retry-After": decision.retry_after_header},
        )
    event = parse_inbound(config, body)
    if not event.mapped:
        metrics.webhooks_in.labels(source, "ignored").inc()
        return Response(WebhookAccepted(event_id=event.event_id, status="ignored"), status_code=200)
    redis = _core(state).redis
    dedup_key = inbound_dedup_key(source, event.event_id)
    if await redis.exists(dedup_key):
        metrics.webhooks_in.labels(source, "replayed").inc()
        raise ApiError(409, "webhook_replayed", "this event id was already received", event_id=event.event_id)
    caller = Caller(tenant=config.tenant, key_id=f"webhook:{source}", kind="webhook")
    mint, replayed = await accept_mint(
        state,
        caller,
        recipient_raw=event.recipient,
        collection=event.collection,
        context=event.context or {},
        idempotency_key=f"webhook:{source}:{event.event_id}"[:255],
    )
    await redis.set(dedup_key, mint.id, ex=86400 * 7)
    if replayed:
        metrics.webhooks_in.labels(source, "replayed").inc()
        raise ApiError(409, "webhook_replayed", "this event id was already received", event_id=event.event_id)
    metrics.webhooks_in.labels(source, "accepted").inc()
    return Response(WebhookAccepted(event_id=event.event_id, status="accepted", mint=mint), status_code=202)


def _delivery_view(record: dict[str, Any]) -> Delivery:
    def number(name: str) -> float | None:
        value = record.get(name)
        return float(value) if value not in (None, "") else None

    history = record.get("history")
    return Delivery(
        id=record["id"],
        event_id=record["event_id"],
        type=record["type"],
        job_id=record["job_id"],
        state=record["state"],
        attempts=int(record.get("attempts", 0)),
        created_at=float(record["created_at"]),
        next_at=number("next_at") if record["state"] == "pending" else None,
        last_status=int(record["last_status"]) if record.get("last_status") else None,
        last_error=record.get("last_error"),
        delivered_at=number("delivered_at"),
        history=[DeliveryAttempt(**h) for h in history] if history is not None else None,
    )


@get(
    "/v1/webhook-deliveries",
    summary="Outbound status webhooks for this tenant (state=dead lists the dead letters)",
    before_request=requires("read"),
    responses=_problems(400, 401, 403, 429),
    security=[{"bearer": []}],
)
async def list_deliveries(
    request: Request[Any, Any, Any],
    delivery_state: Annotated[str | None, QueryParameter(name="state", required=False)] = None,
    limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 50,
) -> DeliveryList:
    state = request.app.state
    if delivery_state is not None and delivery_state not in ("pending", "delivered", "dead"):
        raise ApiError(400, "invalid_request", "state must be pending, delivered or dead")
    store: DeliveryStore = state.deliveries
    records = await store.list(caller_of(request).tenant, delivery_state, limit)
    return DeliveryList(deliveries=[_delivery_view(r) for r in records])


async def _owned_delivery(state: State, caller: Caller, delivery_id: str) -> dict[str, Any]:
    store: DeliveryStore = state.deliveries
    record = await store.get(delivery_id) if _valid_id(delivery_id, _DELIVERY_ID_MAX, ".") else None
    if record is None or record.get("tenant") != caller.tenant:
        raise ApiError(404, "delivery_not_found", "no such webhook delivery")
    return record


@get(
    "/v1/webhook-deliveries/{delivery_id:str}",
    summary="One outbound webhook delivery with every attempt",
    before_request=requires("read"),
    responses=_problems(401, 403, 404, 429),
    security=[{"bearer": []}],
)
async def get_delivery(request: Request[Any, Any, Any], delivery_id: FromPath[str]) -> Delivery:
    state = request.app.state
    return _delivery_view(await _owned_delivery(state, caller_of(request), delivery_id))


@post(
    "/v1/webhook-deliveries/{delivery_id:str}/retry",
    status_code=202,
    summary="Send a dead-lettered delivery again",
    before_request=requires("mint"),
    responses=_problems(401, 403, 404, 409, 429),
    security=[{"bearer": []}],
)
async def retry_delivery(
    request: Request[Any, Any, Any], delivery_id: FromPath[str], idempotency_key: IdempotencyKey = None
) -> Response[Any]:
    state = request.app.state
    caller = caller_of(request)
    key = parse_idempotency_key(idempotency_key)
    store: DeliveryStore = state.deliveries

    async def produce() -> tuple[int, Any]:
        record = await _owned_delivery(state, caller, delivery_id)
        if record["state"] != "dead":
            raise ApiError(409, "delivery_not_dead", f"the delivery is {record['state']}, not dead")
        await store.redeliver(delivery_id)
        return 202, _delivery_view({**record, "state": "pending", "attempts": 0, "history": None})

    idem: IdempotencyStore = state.idempotency
    return await idem.run(
        operation="redeliver", caller=caller.tenant, key=key, payload={"delivery": delivery_id}, produce=produce
    )


# --- gateway, health, metrics --------------------------------------------------------------


@get("/ipfs/{cid:str}", summary="IPFS gateway for pinned content", responses=_problems(400, 404))
async def ipfs_gateway(request: Request[Any, Any, Any], cid: FromPath[str]) -> Response[bytes]:
    state = request.app.state
    if not is_cid(cid):
        raise ApiError(400, "invalid_cid", "not a CID")
    found = await _core(state).store.get(cid)
    if found is None:
        raise ApiError(404, "cid_not_found", f"{cid} is not pinned here")
    return Response(
        found.data,
        media_type=found.content_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{cid}"'},
    )


@get("/health", summary="Liveness")
async def health() -> Health:
    return Health(status="ok")


async def _check(name: str, probe: Any) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        result: dict[str, Any] = await asyncio.wait_for(probe(), 3.0)
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", reported by type
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return name, result


@get("/ready", summary="Readiness: Redis, chain, signer balance, queue depth", responses=_problems(503))
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    state = request.app.state
    core = _core(state)
    settings = core.settings
    rpc: JsonRpcClient = state.rpc

    async def redis_probe() -> dict[str, Any]:
        return {"ok": bool(await core.redis.ping())}

    async def chain_probe() -> dict[str, Any]:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        ok = settings.chain_id is None or chain_id == settings.chain_id
        return {"ok": ok, "chain_id": chain_id}

    async def signer_probe() -> dict[str, Any]:
        if state.signer_address is None:
            return {"ok": True, "skipped": "no signer configured"}
        balance = int(await rpc.call("eth_getBalance", [state.signer_address, "latest"]), 16)
        return {"ok": balance >= settings.min_signer_balance_wei, "address": state.signer_address, "wei": str(balance)}

    async def queue_probe() -> dict[str, Any]:
        pipeline_depth = await core.pipeline_queue.count("queued")
        mint_depth = await core.mint_queue.count("queued")
        _metrics(state).queue_depth.labels("pipeline").set(pipeline_depth)
        _metrics(state).queue_depth.labels("mint").set(mint_depth)
        return {"ok": pipeline_depth + mint_depth <= settings.max_queue_depth, "pipeline": pipeline_depth,
                "mint": mint_depth}  # fmt: skip

    checks = dict(
        await asyncio.gather(
            _check("redis", redis_probe),
            _check("chain", chain_probe),
            _check("signer", signer_probe),
            _check("queue", queue_probe),
        )
    )
    if all(check["ok"] for check in checks.values()):
        return Response(Ready(status="ready", checks=checks))
    return Response(
        {
            "type": "https://personamint.dev/problems/not_ready",
            "title": "not ready",
            "status": 503,
            "detail": "failing: " + ", ".join(name for name, check in checks.items() if not check["ok"]),
            "code": "not_ready",
            "checks": checks,
        },
        status_code=503,
        media_type="application/problem+json",
        headers={"Retry-After": "5"},
    )


@get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    state = request.app.state
    return Response(_metrics(state).render(), media_type=content_type())


@get(BENCH_PATH, include_in_schema=False)
async def bench_bare() -> dict[str, str]:
    """A route that does nothing, outside RequestContext: what the framework alone costs (benchmarks)."""
    return {"status": "ok"}


@get(BENCH_PATH + "-with-context", include_in_schema=False)
async def bench_bare_with_context() -> dict[str, str]:
    """The same, through RequestContext (request id, metrics) like every API route (benchmarks)."""
    return {"status": "ok"}


# --- the app -----------------------------------------------------------------------------------


def _siwe_policy(settings: Settings, public_url: str) -> SiwePolicy:
    uri = (settings.siwe_uri or public_url).rstrip("/")
    domain = settings.siwe_domain or urlsplit(uri).netloc
    return SiwePolicy(domain=domain, uri=uri, chain_id=settings.chain_id, clock_skew_s=settings.siwe_clock_skew_s)


def create_app(settings: Settings) -> Litestar:
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        core = Core.create(settings)
        state = app.state
        state.core = core
        state.metrics = metrics
        state.public_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        state.key_limit = Limit.per_minute(settings.key_rate_per_min, settings.key_burst)
        state.recipient_limit = Limit.per_minute(settings.recipient_rate_per_min, settings.recipient_burst)
        mux = RedisMux(settings.redis_url or "")  # the request hot path's auto-pipelined connection
        state.authenticator = Authenticator(mux, state.key_limit)
        state.limiter = RateLimiter(core.redis)
        state.idempotency = IdempotencyStore(core.redis)
        state.deliveries = DeliveryStore(core.redis)
        rpc = JsonRpcClient(settings.rpc_url or "http://127.0.0.1:8545", retries=1)
        state.rpc = rpc
        state.siwe = SiweService(
            core.redis,
            _siwe_policy(settings, state.public_url),
            nonce_ttl_s=settings.siwe_nonce_ttl_s,
            session_ttl_s=settings.siwe_session_ttl_s,
            contract_wallets=ContractWallets(rpc),
        )
        state.signer_address = (
            Account.from_key(settings.signer_key.get_secret_value()).address if settings.signer_key else None
        )
        personalizer = build_personalizer(settings, rpc, core.redis)  # the worker's own recipe
        state.previews = PreviewService(
            PreviewDeps(
                redis=core.redis,
                personalizer=personalizer,
                collections=core.collections,
                render_queue=core.pipeline_queue,
                render_timeout_s=settings.preview_timeout_s,
                ttl_s=settings.preview_cache_ttl_s,
                concurrency=settings.preview_concurrency,
            )
        )
        for name, source in settings.webhook_sources.items():
            if source.callback_url:
                await set_endpoint(core.redis, source.tenant, source.callback_url, source.secret.get_secret_value())
                log.info("status webhooks for source %s go to its callback URL", name)
        deliverer: WebhookDeliverer | None = None
        delivery_task: asyncio.Task[None] | None = None
        if settings.webhook_delivery:
            deliverer = WebhookDeliverer(
                core.redis,
                core.jobs,
                RetryPolicy(
                    max_attempts=settings.webhook_max_attempts,
                    base_s=settings.webhook_backoff_base_s,
                    max_s=settings.webhook_backoff_max_s,
                    timeout_s=settings.webhook_timeout_s,
                ),
                poll_s=settings.webhook_poll_s,
                on_outcome=lambda outcome: metrics.webhooks_out.labels(outcome).inc(),
            )
            delivery_task = asyncio.create_task(deliverer.run())
        reconciler = Reconciler(
            core.jobs,
            enqueue_pipeline=lambda job_id: enqueue_pipeline(core.pipeline_queue, settings, job_id),
            enqueue_mint=lambda job_id: enqueue_mint(core.mint_queue, settings, job_id),
            every_s=settings.reconcile_s,
            after_s=settings.reconcile_after_s,
        )
        reconcile_task = asyncio.create_task(reconciler.run())
        # Everything loaded so far (Litestar, web3, LangChain, the schema) lives as long as the
        # process: moved out of the collector's view, a full collection no longer walks it
        # (~116k objects, a 60-80 ms stall for every request in flight; benchmarks.gc_pause).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # back to the collector, for a process that goes on (tests, embedding)
            reconciler.stop()
            reconcile_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconcile_task
            if deliverer is not None and delivery_task is not None:
                await deliverer.stop()
                delivery_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivery_task
            await personalizer.aclose()
            await rpc.aclose()
            await mux.aclose()
            await core.close()

    handlers: list[Any] = [
        create_mint,
        get_mint,
        mint_events,
        create_preview,
        preview_image,
        get_profile,
        siwe_nonce,
        siwe_sign_in,
        inbound_webhook,
        list_deliveries,
        get_delivery,
        retry_delivery,
        ipfs_gateway,
        health,
        ready,
        metrics_endpoint,
    ]
    if settings.bench_routes:
        handlers += [bench_bare, bench_bare_with_context]
    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # api.logging owns the handlers (JSON, redacted)
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Persona Mint",
            version="0.2.0",
            path="/schema",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key (pm_…) or a SIWE session token (pms_…).",
                    )
                }
            ),
        ),
        debug=False,
    )
    # Wrapped outermost (see RequestContext); the bare benchmark route stays bare.
    app.asgi_handler = RequestContext(
        StatusReads(app.asgi_handler, app), metrics, log_requests=settings.log_requests, bypass=frozenset({BENCH_PATH})
    )
    return app
