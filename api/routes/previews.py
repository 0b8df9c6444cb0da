"""Preview and profile routes: what the next mint for a wallet would be, and what the service saw."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth import Caller, caller_of
from api.errors import ApiError
from api.routes.common import PREVIEW_ID_MAX, IdempotencyKeyHeader, is_wellformed_id, problem_responses, requires
from api.schemas import (
    PreviewRequest,
    ProfileView,
)
from api.state import api_state
from api.validation import check_context, parse_idempotency_key, parse_recipient
from jobs.keys import profile_view_key


def require_own_wallet(caller: Caller, wallet: str) -> None:
    """A wallet session sees only its own wallet (what any other's next mint would be is not its business)."""
    if caller.address is not None and wallet.lower() != caller.address.lower():
        raise ApiError(403, "not_your_wallet", "a wallet session may preview and profile only its own address")


@post(
    "/v1/previews",
    status_code=200,
    summary="Render the image the recipient's next mint will get, without minting",
    before_request=requires("preview"),
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 429, 503),
    security=[{"bearer": []}],
)
async def create_preview(
    request: Request[Any, Any, Any], data: JSONBody[PreviewRequest], idempotency_key: IdempotencyKeyHeader = None
) -> Response[Any]:
    state = api_state(request.app)
    caller = caller_of(request)
    key = parse_idempotency_key(idempotency_key)
    recipient = parse_recipient(data.recipient)
    core = state.core
    if data.collection not in core.collections:
        raise ApiError(404, "unknown_collection", f"collection {data.collection!r} does not exist")
    caller.require_collection(data.collection)
    require_own_wallet(caller, recipient)
    context = check_context(data.context, core.collections[data.collection].context_schema)

    async def produce() -> tuple[int, Any]:
        view = await state.previews.preview(recipient, data.collection, context, caller.tenant)
        state.metrics.previews.labels(str(view["cached"]).lower()).inc()
        return 200, view

    payload = {"recipient": recipient, "collection": data.collection, "context": context}
    return await state.idempotency.run(
        operation="preview", caller=caller.tenant, key=key, payload=payload, produce=produce
    )


@get(
    "/v1/previews/{preview_id:str}/image",
    summary="A preview's PNG (an unguessable, expiring link)",
    responses=problem_responses(404),
    media_type="image/png",
)
async def preview_image(request: Request[Any, Any, Any], preview_id: FromPath[str]) -> Response[bytes]:
    previews = api_state(request.app).previews
    png = await previews.image(preview_id) if is_wellformed_id(preview_id, PREVIEW_ID_MAX, "-_") else None
    if png is None:
        raise ApiError(404, "preview_not_found", "no such preview (they expire)")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@get(
    "/v1/profiles/{address:str}",
    summary="A wallet's profile and the style it gets in a collection",
    before_request=requires("read"),
    responses=problem_responses(400, 401, 403, 404, 429, 503),
    security=[{"bearer": []}],
)
async def get_profile(
    request: Request[Any, Any, Any],
    address: FromPath[str],
    collection: Annotated[str, QueryParameter(name="collection", max_length=64)] = "default",
) -> ProfileView:
    state = api_state(request.app)
    wallet = parse_recipient(address)
    core = state.core
    if collection not in core.collections:
        raise ApiError(404, "unknown_collection", f"collection {collection!r} does not exist")
    caller = caller_of(request)
    caller.require_collection(collection)
    require_own_wallet(caller, wallet)
    # Block-true: the answer names the head it read, and a newer head is read anew.
    block = await state.previews.head(collection)
    cache_key = profile_view_key(collection, wallet, block)
    cached = await core.redis.get(cache_key)
    if cached is not None:
        view = msgspec.json.decode(cached, type=ProfileView)
        view.cached = True
        return view
    view = await state.previews.profile_and_style(wallet, collection, caller.tenant, block)
    await core.redis.set(cache_key, msgspec.json.encode(view), ex=core.settings.preview_cache_ttl_s)
    return view


HANDLERS = (create_preview, preview_image, get_profile)
