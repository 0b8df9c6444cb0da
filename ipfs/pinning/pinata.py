"""Pin on Pinata by uploading the exact bytes as a file, asking for a CIDv1, and checking its CID."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import httpx

from ipfs.cid import cid_for_bytes, parse_cid
from ipfs.pinning import (
    CIDMismatch,
    PinnedObject,
    PinningRejected,
    PinningResponseError,
    PinTimeout,
    WaitPolicy,
    canonical_cid,
    error_text,
    send_with_retries,
    verified_object,
)

__all__ = ["PINATA_API_URL", "PINATA_UPLOADS_URL", "PinataApi", "PinataPinner"]

PINATA_API_URL = "https://api.pinata.cloud"
PINATA_UPLOADS_URL = "https://uploads.pinata.cloud"
PinataApi = Literal["legacy", "v3"]
_MAX_NAME_CHARS = 255


class PinataPinner:
    """Pinata, authenticated with a JWT; uploads return once the content is pinned.

    Bytes always go up as a multipart file, never through `pinJSONToIPFS`: that endpoint
    re-serialises JSON, and the CID of re-serialised metadata is not the CID we computed.

    `api="legacy"` uses `POST /pinning/pinFileToIPFS` with `pinataOptions={"cidVersion": 1}`;
    `api="v3"` uses `POST {uploads}/v3/files` with `network=public` (v3 always answers CIDv1).
    """

    def __init__(
        self,
        jwt: str,
        *,
        api: PinataApi = "legacy",
        api_url: str = PINATA_API_URL,
        uploads_url: str = PINATA_UPLOADS_URL,
        gateway_url: str | None = None,
        policy: WaitPolicy | None = None,
        client: httpx.AsyncClient | None = None,
        service: str = "pinata",
    ) -> None:
        if not jwt:
            raise ValueError("Pinata needs a JWT")
        if api not in ("legacy", "v3"):
            raise ValueError("api must be 'legacy' or 'v3'")
        self.api = api
        self.api_url = api_url.rstrip("/")
        self.uploads_url = uploads_url.rstrip("/")
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.policy = policy or WaitPolicy()
        self.service = service
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(trust_env=False)
        self._headers = {"Authorization": f"Bearer {jwt}"}

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> PinataPinner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Upload `data` as a file and return its CID once Pinata reports the same CID."""
        expected = await asyncio.to_thread(cid_for_bytes, data)
        filename = (name or expected)[:_MAX_NAME_CHARS]
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                if self.api == "legacy":
                    actual = await self._upload_legacy(data, content_type=content_type, filename=filename)
                else:
                    actual = await self._upload_v3(data, content_type=content_type, filename=filename)
        except TimeoutError:
            raise PinTimeout(expected, self.policy.timeout_s, service=self.service) from None
        if actual != expected:
            raise CIDMismatch(expected, actual, service=self.service)
        return expected

    async def get(self, cid: str) -> PinnedObject | None:
        """Read back through the configured (dedicated) gateway, bytes verified; None without one."""
        parse_cid(cid)
        if self.gateway_url is None:
            return None
        try:
            response = await self._send("GET", f"{self.gateway_url}/ipfs/{cid}", authorized=False)
        except PinningRejected as exc:
            if exc.status_code == 404:
                return None
            raise
        return await verified_object(cid, response)

    async def _upload_legacy(self, data: bytes, *, content_type: str, filename: str) -> str:
        form = {
            "pinataOptions": json.dumps({"cidVersion": 1, "wrapWithDirectory": False}),
            "pinataMetadata": json.dumps({"name": filename, "keyvalues": {"content_type": content_type}}),
        }
        response = await self._send(
            "POST",
            f"{self.api_url}/pinning/pinFileToIPFS",
            data=form,
            files={"file": (filename, data, content_type)},
        )
        body = _json_object(response, self.service)
        return canonical_cid(body.get("IpfsHash"), service=self.service)

    async def _upload_v3(self, data: bytes, *, content_type: str, filename: str) -> str:
        form = {"network": "public", "name": filename, "keyvalues": json.dumps({"content_type": content_type})}
        response = await self._send(
            "POST",
            f"{self.uploads_url}/v3/files",
            data=form,
            files={"file": (filename, data, content_type)},
        )
        body = _json_object(response, self.service)
        uploaded = body.get("data")
        if not isinstance(uploaded, dict):
            raise PinningResponseError(f"{self.service}: upload answered without 'data'")
        return canonical_cid(uploaded.get("cid"), service=self.service)

    async def _send(self, method: str, url: str, *, authorized: bool = True, **request: Any) -> httpx.Response:
        return await send_with_retries(
            self._client,
            method,
            url,
            service=self.service,
            policy=self.policy,
            describe_error=_describe_error,
            headers=self._headers if authorized else {},
            **request,
        )


def _describe_error(response: httpx.Response) -> str:
    # Legacy answers {"error": {"reason", "details"}} or {"error": "…"}; v3 {"error": {"message"}}.
    for keys in (("error", "reason"), ("error", "message"), ("error",), ("message",)):
        text = error_text(response, *keys)
        if text and not text.startswith("{"):
            return text
    return error_text(response)


def _json_object(response: httpx.Response, service: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PinningResponseError(f"{service}: answered with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise PinningResponseError(f"{service}: answered with JSON that is not an object")
    return body
