"""Webhook routes: signed events in, outbound deliveries listed and retried."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, QueryParameter

from api.auth import Caller, caller_of
from api.errors import ApiError, rate_limited
from api.inbound import INBOUND_DEDUP_TTL_S, parse_inbound, verify_signature
from api.routes.common import (
    DELIVERY_ID_MAX,
    IdempotencyKeyHeader,
    accept_mint,
    is_wellformed_id,
    problem_responses,
    require_json_body,
    requires,
)
from api.schemas import (
    Delivery,
    DeliveryAttempt,
    DeliveryList,
    WebhookAccepted,
)
from api.state import ApiState, api_state
from api.validation import parse_idempotency_key
from jobs.keys import inbound_event_key, inbound_idempotency_key
from jobs.outbox import DeliveryRecord
from webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER


@post(
    "/v1/webhooks/{source:str}",
    status_code=202,
    summary="Inbound reward webhook: a signed event becomes a mint",
    description=(
        f"Signed with {SIGNATURE_HEADER}: v1=<hex HMAC-SHA256(secret, '<timestamp>.' + body)> and "
        f"{TIMESTAMP_HEADER}: <unix seconds>. Body: {{'id', 'type', 'data'}}; the event id is the "
        "idempotency key (a replayed id is refused with 409)."
    ),
    responses=problem_responses(400, 401, 404, 409, 413, 415, 429, 503),
)
async def inbound_webhook(request: Request[Any, Any, Any], source: FromPath[str]) -> Response[WebhookAccepted]:
    state = api_state(request.app)
    config = state.core.settings.webhook_sources.get(source)
    metrics = state.metrics
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
    require_json_body(request)  # after the signature: who sent it comes first
    decision = await state.limiter.hit((f"source:{source}", state.key_limit))
    if not decision.allowed:
        metrics.rate_limited.labels("source").inc()
        raise rate_limited("rate_limited", "too many events from this source", decision)
    event = parse_inbound(config, body)
    if not event.mapped:
        metrics.webhooks_in.labels(source, "ignored").inc()
        return Response(WebhookAccepted(event_id=event.event_id, status="ignored"), status_code=200)
    redis = state.core.redis
    dedup_key = inbound_event_key(source, event.event_id)
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
        idempotency_key=inbound_idempotency_key(source, event.event_id),  # no caller can spell it
    )
    await redis.set(dedup_key, mint.id, ex=INBOUND_DEDUP_TTL_S)
    if replayed:
        metrics.webhooks_in.labels(source, "replayed").inc()
        raise ApiError(409, "webhook_replayed", "this event id was already received", event_id=event.event_id)
    metrics.webhooks_in.labels(source, "accepted").inc()
    return Response(WebhookAccepted(event_id=event.event_id, status="accepted", mint=mint), status_code=202)


def _delivery_view(record: DeliveryRecord) -> Delivery:
    history = record.history
    return Delivery(
        id=record.id,
        event_id=record.event_id,
        type=record.type,
        job_id=record.job_id,
        state=record.state,
        attempts=record.attempts,
        created_at=record.created_at,
        next_at=record.next_at if record.state == "pending" else None,
        last_status=record.last_status,
        last_error=record.last_error,
        delivered_at=record.delivered_at,
        history=[DeliveryAttempt(h.at, h.status, h.error, h.seconds) for h in history] if history is not None else None,
    )


@get(
    "/v1/webhook-deliveries",
    summary="Outbound status webhooks for this tenant (state=dead lists the dead letters)",
    before_request=requires("read"),
    responses=problem_responses(400, 401, 403, 429),
    security=[{"bearer": []}],
)
async def list_deliveries(
    request: Request[Any, Any, Any],
    delivery_state: Annotated[str | None, QueryParameter(name="state", required=False)] = None,
    limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 50,
) -> DeliveryList:
    if delivery_state is not None and delivery_state not in ("pending", "delivered", "dead"):
        raise ApiError(400, "invalid_request", "state must be pending, delivered or dead")
    records = await api_state(request.app).deliveries.list(caller_of(request).tenant, delivery_state, limit)
    return DeliveryList(deliveries=[_delivery_view(r) for r in records])


async def _owned_delivery(state: ApiState, caller: Caller, delivery_id: str) -> DeliveryRecord:
    wellformed = is_wellformed_id(delivery_id, DELIVERY_ID_MAX, ".")
    record = await state.deliveries.get(delivery_id) if wellformed else None
    if record is None or record.tenant != caller.tenant:
        raise ApiError(404, "delivery_not_found", "no such webhook delivery")
    return record


@get(
    "/v1/webhook-deliveries/{delivery_id:str}",
    summary="One outbound webhook delivery with every attempt",
    before_request=requires("read"),
    responses=problem_responses(401, 403, 404, 429),
    security=[{"bearer": []}],
)
async def get_delivery(request: Request[Any, Any, Any], delivery_id: FromPath[str]) -> Delivery:
    return _delivery_view(await _owned_delivery(api_state(request.app), caller_of(request), delivery_id))


@post(
    "/v1/webhook-deliveries/{delivery_id:str}/retry",
    status_code=202,
    summary="Send a dead-lettered delivery again",
    before_request=requires("mint"),
    responses=problem_responses(401, 403, 404, 409, 429),
    security=[{"bearer": []}],
)
async def retry_delivery(
    request: Request[Any, Any, Any], delivery_id: FromPath[str], idempotency_key: IdempotencyKeyHeader = None
) -> Response[Any]:
    state = api_state(request.app)
    caller = caller_of(request)
    key = parse_idempotency_key(idempotency_key)

    async def produce() -> tuple[int, Any]:
        record = await _owned_delivery(state, caller, delivery_id)
        if record.state != "dead":
            raise ApiError(409, "delivery_not_dead", f"the delivery is {record.state}, not dead")
        await state.deliveries.redeliver(delivery_id)
        return 202, _delivery_view(dataclasses.replace(record, state="pending", attempts=0, history=None))

    return await state.idempotency.run(
        operation="redeliver", caller=caller.tenant, key=key, payload={"delivery": delivery_id}, produce=produce
    )


HANDLERS = (inbound_webhook, list_deliveries, get_delivery, retry_delivery)
