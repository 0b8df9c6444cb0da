"""The IPFS gateway route for pinned content."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from api.errors import ApiError
from api.routes.common import problem_responses
from api.state import api_state
from config.clients import Core
from ipfs.cid import is_cid
from ipfs.pinning import CIDMismatch, PinnedObject, PinningError

log = logging.getLogger("personamint.api")


@get(
    "/ipfs/{cid:str}",
    summary="IPFS gateway for what this deployment pinned",
    description=(
        "Serves any CID the deployment pinned: from this host's store, else read through the "
        "configured pinners (bytes checked against the CID before they are served, then kept "
        "here). A CID the deployment never pinned is 404 at once."
    ),
    responses=problem_responses(400, 404, 502, 503),
)
async def ipfs_gateway(request: Request[Any, Any, Any], cid: FromPath[str]) -> Response[bytes]:
    if not is_cid(cid):
        raise ApiError(400, "invalid_cid", "not a CID")
    core = api_state(request.app).core
    found = await core.store.get(cid)
    if found is None:
        found = await _read_through(core, cid)
    return Response(
        found.data,
        media_type=found.content_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{cid}"'},
    )


async def _read_through(core: Core, cid: str) -> PinnedObject:
    """A CID this host does not hold: from the pinners, if the deployment pinned it at all."""
    if not await core.pinned.contains(cid):
        raise ApiError(404, "cid_not_found", f"{cid} is not pinned by this deployment")
    try:
        found: PinnedObject | None = await core.pinner.get(cid)  # remote reads check bytes against the CID
    except CIDMismatch:
        log.error("gateway read-through of %s: a pinner served other bytes", cid)
        raise ApiError(502, "cid_mismatch", "a pinner served bytes that do not match this CID") from None
    except PinningError as exc:
        log.warning("gateway read-through of %s failed: %s", cid, type(exc).__name__)
        raise ApiError(
            503, "pinning_unavailable", "the pinners holding this CID cannot be read now", headers={"Retry-After": "5"}
        ) from None
    if found is None:
        raise ApiError(404, "cid_not_found", f"{cid} is not found on any configured pinner")
    await core.store.pin(found.data, content_type=found.content_type)  # served from here from now on
    return found


HANDLERS = (ipfs_gateway,)
