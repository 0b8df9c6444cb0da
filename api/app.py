"""The Litestar app: routes, error handlers and the lifespan that owns the clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter

from api.auth import Caller, authenticate
from api.errors import EXCEPTION_HANDLERS, ApiError
from api.jobs import Job
from api.queue import enqueue_pipeline
from api.schemas import Health, JobError, Links, MintAccepted, MintRequest, MintStatus
from api.services import Core
from api.settings import Settings
from api.validation import check_context, parse_idempotency_key, parse_recipient
from chain.ipfs import is_cid


def _core(state: State) -> Core:
    core: Core = state.core
    return core


async def _caller(request: Request[Any, Any, Any], state: State) -> Caller:
    return await authenticate(_core(state).redis, request.headers.get("authorization"))


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


@post("/v1/mints", status_code=202, summary="Accept a personalized mint")
async def create_mint(
    request: Request[Any, Any, Any],
    state: State,
    data: MintRequest,
    idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", required=False)] = None,
) -> Response[MintAccepted]:
    caller = await _caller(request, state)
    core = _core(state)
    recipient = parse_recipient(data.recipient)
    if data.collection not in core.collections:
        raise ApiError(404, "unknown_collection", f"collection {data.collection!r} does not exist")
    key = parse_idempotency_key(idempotency_key)
    accepted = await core.jobs.accept(
        tenant=caller.tenant,
        recipient=recipient,
        collection=data.collection,
        context=check_context(data.context),
        idempotency_key=key,
    )
    if accepted.outcome == "conflict":
        raise ApiError(
            409, "idempotency_conflict", "this Idempotency-Key was used with a different body", job_id=accepted.job_id
        )
    job = await core.jobs.get(accepted.job_id)
    assert job is not None
    if job.status not in ("confirmed", "failed"):
        # Re-enqueueing a live job is a no-op (keyed); re-enqueueing a stalled one revives it.
        await enqueue_pipeline(core.pipeline_queue, core.settings, job.id)
    headers = {"Location": f"/v1/mints/{job.id}"}
    if accepted.outcome == "existing":
        headers["Idempotent-Replayed"] = "true"
    return Response(MintAccepted(id=job.id, status=job.status, links=_links(job.id)), status_code=202, headers=headers)


@get("/v1/mints/{job_id:str}", summary="A mint's status")
async def get_mint(request: Request[Any, Any, Any], state: State, job_id: str) -> MintStatus:
    caller = await _caller(request, state)
    core = _core(state)
    job = await core.jobs.get(job_id) if len(job_id) <= 64 and job_id.isalnum() else None
    if job is None or job.tenant != caller.tenant:
        raise ApiError(404, "job_not_found", f"no mint {job_id!r}")
    return _status_view(job, state.public_url)


@get("/ipfs/{cid:str}", summary="IPFS gateway for pinned content", include_in_schema=True)
async def ipfs_gateway(state: State, cid: str) -> Response[bytes]:
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


def create_app(settings: Settings) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        core = Core.create(settings)
        app.state.core = core
        app.state.public_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        try:
            yield
        finally:
            await core.close()

    return Litestar(
        route_handlers=[create_mint, get_mint, ipfs_gateway, health],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Persona Mint", version="0.1.0", path="/schema"),
        debug=False,
    )
