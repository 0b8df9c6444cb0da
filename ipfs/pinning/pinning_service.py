"""Pin through any IPFS Pinning Services API provider: `POST /pins`, then poll `GET /pins/{requestid}`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ipfs.cid import cid_for_bytes, encode_cid, parse_cid
from ipfs.pinning import (
    PIN_STATUSES,
    CIDMismatch,
    PinFailed,
    PinnedObject,
    Pinner,
    PinningRejected,
    PinningResponseError,
    PinStatusName,
    PinTimeout,
    WaitPolicy,
    canonical_cid,
    error_text,
    send_with_retries,
    verified_object,
)

__all__ = ["PinningServicePinner", "RemotePin", "parse_pin_status"]

_MAX_NAME_CHARS = 255  # the spec's limit on Pin.name
_MAX_ORIGINS = 20
_MAX_REQUEST_ID_CHARS = 255
# Statuses of an earlier request for the same CID that a retry can keep waiting on.
_LIVE_STATUSES = "queued,pinning,pinned"


@dataclass(frozen=True, slots=True)
class RemotePin:
    """A pin request as the service reports it (a validated PinStatus)."""

    requestid: str
    status: PinStatusName
    cid: str
    delegates: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)


def parse_pin_status(body: object, *, expected_cid: str, service: str) -> RemotePin:
    """Validate a PinStatus object against the spec and against the CID we asked for.

    Services (and mocks) may accept a pin with no CID or answer for another one; a token
    must never be minted on the strength of a status that is not about our CID.
    """
    if not isinstance(body, dict):
        raise PinningResponseError(f"{service}: a pin status must be a JSON object")
    requestid = body.get("requestid")
    if not isinstance(requestid, str) or not 0 < len(requestid) <= _MAX_REQUEST_ID_CHARS:
        raise PinningResponseError(f"{service}: pin status has no valid requestid")
    status = body.get("status")
    if status not in PIN_STATUSES:
        raise PinningResponseError(f"{service}: request {requestid} has unknown status {str(status)[:40]!r}")
    pin = body.get("pin")
    if not isinstance(pin, dict) or "cid" not in pin:
        raise PinningResponseError(f"{service}: request {requestid} names no CID")
    cid = canonical_cid(pin["cid"], service=service)
    if cid != expected_cid:
        raise PinningResponseError(f"{service}: request {requestid} is for {cid}, not {expected_cid}")
    delegates = body.get("delegates", [])
    if not isinstance(delegates, list) or not all(isinstance(d, str) for d in delegates):
        raise PinningResponseError(f"{service}: request {requestid} has malformed delegates")
    info = body.get("info") or {}
    if not isinstance(info, dict):
        raise PinningResponseError(f"{service}: request {requestid} has malformed info")
    return RemotePin(requestid=requestid, status=status, cid=cid, delegates=tuple(delegates), info=info)


class PinningServicePinner:
    """A pinning service reached through the IPFS Pinning Services API with a bearer token.

    The service fetches the DAG over IPFS, so somebody must provide it: `provider` (for
    example a KuboPinner whose node is listed in `origins`) receives the bytes first and
    must report our CID. The provider is owned: `aclose` closes it too.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        token: str,
        policy: WaitPolicy | None = None,
        provider: Pinner | None = None,
        origins: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        gateway_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        service: str = "pinning-service",
    ) -> None:
        if not token:
            raise ValueError("a pinning service needs an access token")
        if len(origins) > _MAX_ORIGINS:
            raise ValueError(f"at most {_MAX_ORIGINS} origins")
        self.endpoint = endpoint.rstrip("/")
        self.policy = policy or WaitPolicy()
        self.provider = provider
        self.origins = tuple(origins)
        self.meta = dict(meta or {})
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.service = service
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(trust_env=False)
        self._headers = {"Authorization": f"Bearer {token}"}

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> PinningServicePinner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Provide the bytes (through `provider`), request the pin and wait for the accepted status."""
        cid = await asyncio.to_thread(cid_for_bytes, data)
        progress: list[RemotePin] = []
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                if self.provider is not None:
                    provided = await self.provider.pin(data, content_type=content_type, name=name)
                    if provided != cid:
                        raise CIDMismatch(cid, provided, service=f"{self.service} provider")
                await self._pin_and_wait(cid, name=name, content_type=content_type, progress=progress)
        except TimeoutError:
            last = progress[-1].status if progress else None
            raise PinTimeout(cid, self.policy.timeout_s, service=self.service, last_status=last) from None
        return cid

    async def pin_cid(self, cid: str, *, name: str | None = None, content_type: str | None = None) -> RemotePin:
        """Request a pin for a CID someone already provides and wait for the accepted status."""
        cid = encode_cid(*parse_cid(cid))
        progress: list[RemotePin] = []
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await self._pin_and_wait(cid, name=name, content_type=content_type, progress=progress)
        except TimeoutError:
            last = progress[-1].status if progress else None
            raise PinTimeout(cid, self.policy.timeout_s, service=self.service, last_status=last) from None

    async def wait_for(self, requestid: str, cid: str) -> RemotePin:
        """Poll an existing request until the accepted status (bounded by the policy's timeout)."""
        cid = encode_cid(*parse_cid(cid))
        progress: list[RemotePin] = []
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                current = await self.status(requestid, cid)
                progress.append(current)
                return await self._wait(current, progress)
        except TimeoutError:
            last = progress[-1].status if progress else None
            raise PinTimeout(cid, self.policy.timeout_s, service=self.service, last_status=last) from None

    async def status(self, requestid: str, cid: str) -> RemotePin:
        """`GET /pins/{requestid}`, validated against `cid`."""
        if not requestid or "/" in requestid or len(requestid) > _MAX_REQUEST_ID_CHARS:
            raise ValueError("not a request id")
        try:
            response = await self._send("GET", f"/pins/{requestid}")
        except PinningRejected as exc:
            if exc.status_code == 404:
                raise PinFailed(f"{self.service}: pin request {requestid} for {cid} no longer exists") from None
            raise
        return parse_pin_status(_json(response, self.service), expected_cid=cid, service=self.service)

    async def find(self, cid: str) -> RemotePin | None:
        """The newest live (queued, pinning or pinned) request for `cid`, so a retry reuses it."""
        response = await self._send("GET", "/pins", params={"cid": cid, "status": _LIVE_STATUSES, "limit": "1"})
        body = _json(response, self.service)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or not isinstance(body.get("count"), int):
            raise PinningResponseError(f"{self.service}: GET /pins must answer {{count, results}}")
        for result in results:
            found = parse_pin_status(result, expected_cid=cid, service=self.service)
            if found.status != "failed":
                return found
        return None

    async def get(self, cid: str) -> PinnedObject | None:
        """Read back through the configured gateway (bytes verified), else the provider, else None."""
        parse_cid(cid)
        if self.gateway_url is None:
            return await self.provider.get(cid) if self.provider is not None else None
        try:
            response = await self._send("GET", f"{self.gateway_url}/ipfs/{cid}", absolute=True)
        except PinningRejected as exc:
            if exc.status_code == 404:
                return None
            raise
        return await verified_object(cid, response)

    async def _pin_and_wait(
        self, cid: str, *, name: str | None, content_type: str | None, progress: list[RemotePin]
    ) -> RemotePin:
        current = await self.find(cid)
        if current is None:
            current = await self._request(cid, name=name, content_type=content_type)
        progress.append(current)
        return await self._wait(current, progress)

    async def _request(self, cid: str, *, name: str | None, content_type: str | None) -> RemotePin:
        pin: dict[str, Any] = {"cid": cid, "name": (name or cid)[:_MAX_NAME_CHARS]}
        if self.origins:
            pin["origins"] = list(self.origins)
        meta = dict(self.meta)
        if content_type:
            meta["content_type"] = content_type
        if meta:
            pin["meta"] = meta
        response = await self._send("POST", "/pins", json=pin)
        return parse_pin_status(_json(response, self.service), expected_cid=cid, service=self.service)

    async def _wait(self, current: RemotePin, progress: list[RemotePin]) -> RemotePin:
        delay = self.policy.poll_s
        while True:
            if current.status == "failed":
                details = str(current.info.get("status_details", ""))[:300]
                raise PinFailed(f"{self.service}: pin request {current.requestid} for {current.cid} failed {details}")
            if self.policy.accepts(current.status):
                return current
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.policy.max_poll_s)
            current = await self.status(current.requestid, current.cid)
            progress.append(current)

    async def _send(self, method: str, path: str, *, absolute: bool = False, **request: Any) -> httpx.Response:
        url = path if absolute else f"{self.endpoint}{path}"
        headers = {} if absolute else self._headers
        return await send_with_retries(
            self._client,
            method,
            url,
            service=self.service,
            policy=self.policy,
            describe_error=lambda r: error_text(r, "error", "reason"),
            headers=headers,
            **request,
        )


def _json(response: httpx.Response, service: str) -> Any:
    with contextlib.suppress(ValueError):
        return response.json()
    raise PinningResponseError(f"{service}: answered {response.status_code} with a body that is not JSON")
