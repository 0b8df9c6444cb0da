"""What the running API holds: its clients and services, built once by the lifespan, read by every route."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar

from api.auth import Authenticator
from api.idempotency import IdempotencyStore
from api.metrics import Metrics
from api.previews import PreviewService
from api.siwe import SiweService
from api.streams import StreamHub, StreamLeases
from chain.rpc import JsonRpc
from config.clients import Core
from jobs.outbox import DeliveryStore
from jobs.ratelimit import Limit, RateLimiter

_KEY = "personamint"  # the one entry this service keeps in Litestar's `app.state`


@dataclass(frozen=True, slots=True)
class ApiState:
    """The API process's collaborators; routes and the status fast path reach them through `api_state`."""

    core: Core  # settings, Redis, the job store, queues, collections, the content store
    metrics: Metrics
    public_url: str  # where callers reach this API (no trailing slash): links to pinned content
    key_limit: Limit  # per credential, and per inbound webhook source
    recipient_limit: Limit  # new mints per recipient wallet
    authenticator: Authenticator
    limiter: RateLimiter
    idempotency: IdempotencyStore
    deliveries: DeliveryStore
    rpc: JsonRpc  # the chain: readiness probes and SIWE contract-wallet checks
    siwe: SiweService
    signer_address: str | None  # the minter's address, for the balance probe; None without a signer key
    previews: PreviewService
    streams: StreamHub  # the process's one Redis reader behind every open SSE stream
    stream_leases: StreamLeases  # open SSE streams per credential, across API processes


def install_api_state(app: Litestar, state: ApiState) -> None:
    app.state[_KEY] = state


def api_state(app: Litestar) -> ApiState:
    """The running app's state (a dict lookup: cheap enough for every request); KeyError before the lifespan ran."""
    state: ApiState = app.state[_KEY]
    return state
