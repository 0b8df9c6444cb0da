"""The IPFS gateway route for pinned content."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from api.errors import ApiError
from api.routes.common import problem_responses
from api.state import api_state
from ipfs.cid import is_cid


@get("/ipfs/{cid:str}", summary="IPFS gateway for pinned content", responses=problem_responses(400, 404))
async def ipfs_gateway(request: Request[Any, Any, Any], cid: FromPath[str]) -> Response[bytes]:
    if not is_cid(cid):
        raise ApiError(400, "invalid_cid", "not a CID")
    found = await api_state(request.app).core.store.get(cid)
    if found is None:
        raise ApiError(404, "cid_not_found", f"{cid} is not pinned here")
    return Response(
        found.data,
        media_type=found.content_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{cid}"'},
    )


HANDLERS = (ipfs_gateway,)
