"""Pin through a Kubo node's RPC API: `/api/v0/add` with our exact DAG settings, then `pin/add`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from ipfs.cid import CHUNK_SIZE, cid_for_bytes, parse_cid
from ipfs.pinning import (
    CIDMismatch,
    PinnedObject,
    PinningError,
    PinningRejected,
    PinningResponseError,
    PinTimeout,
    WaitPolicy,
    canonical_cid,
    error_text,
    send_with_retries,
    sniff_content_type,
)

__all__ = ["ADD_PARAMS", "KuboPinner"]

# `ipfs add --cid-version=1` spelled out, so a node whose Import.* config or profile
# differs still builds the DAG chain.ipfs computes. pin=false: a DAG whose CID does not
# match ours is never pinned; pin/add follows once the CID is checked.
ADD_PARAMS: dict[str, str] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "pin": "false",
    "progress": "false",
    "wrap-with-directory": "false",
}


class KuboPinner:
    """A Kubo node reached over its RPC API (`http://host:5001`); never expose that API publicly.

    `authorization` is a whole Authorization header value ("Bearer …" or "Basic …"), for a
    node with `API.Authorizations` set or behind an authenticating proxy.
    """

    def __init__(
        self,
        api_url: str,
        *,
        policy: WaitPolicy | None = None,
        authorization: str | None = None,
        client: httpx.AsyncClient | None = None,
        service: str = "kubo",
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.policy = policy or WaitPolicy()
        self.service = service
        headers = {"Authorization": authorization} if authorization else {}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(headers=headers, trust_env=False)
        if client is not None and headers:
            self._client.headers.update(headers)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> KuboPinner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Add `data` to the node, check the node's CID equals ours, then pin it recursively."""
        del content_type  # UnixFS has no media type; the gateway sniffs it
        expected = await asyncio.to_thread(cid_for_bytes, data)
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                actual = await self._add(data, filename=name or expected)
                if actual != expected:
                    raise CIDMismatch(expected, actual, service=self.service)
                await self.pin_cid(expected)
        except TimeoutError:
            raise PinTimeout(expected, self.policy.timeout_s, service=self.service) from None
        return expected

    async def pin_cid(self, cid: str) -> None:
        """`pin/add` a CID whose blocks the node has or can fetch; returns once it is pinned."""
        parse_cid(cid)
        response = await self._rpc("pin/add", params={"arg": cid, "recursive": "true", "progress": "false"})
        pins = _last_json_line(response.text, self.service).get("Pins")
        if not isinstance(pins, list) or cid not in {canonical_cid(p, service=self.service) for p in pins}:
            raise PinningResponseError(f"{self.service}: pin/add did not report {cid} as pinned")

    async def is_pinned(self, cid: str) -> bool:
        """Whether the node holds a recursive (or direct) pin on `cid`."""
        parse_cid(cid)
        try:
            response = await self._rpc("pin/ls", params={"arg": cid, "type": "all"})
        except PinningRejected as exc:
            # Kubo answers "not pinned" with HTTP 500 and a message.
            if "not pinned" in str(exc):
                return False
            raise
        keys = _last_json_line(response.text, self.service).get("Keys")
        return isinstance(keys, dict) and any(canonical_cid(k, service=self.service) == cid for k in keys)

    async def get(self, cid: str) -> PinnedObject | None:
        """Read `cid` back through `cat`, verifying the bytes hash to it; None when not pinned."""
        parse_cid(cid)
        if not await self.is_pinned(cid):
            return None
        response = await self._rpc("cat", params={"arg": cid})
        data = response.content
        actual = await asyncio.to_thread(cid_for_bytes, data)
        if actual != cid:
            raise CIDMismatch(cid, actual)
        return PinnedObject(cid=cid, data=data, content_type=sniff_content_type(data))

    async def _add(self, data: bytes, *, filename: str) -> str:
        files = {"file": (filename, data, "application/octet-stream")}
        response = await self._rpc("add", params=ADD_PARAMS, files=files)
        added = _last_json_line(response.text, self.service)
        cid = added.get("Hash")
        if not isinstance(cid, str):
            raise PinningResponseError(f"{self.service}: add answered without a Hash")
        return canonical_cid(cid, service=self.service)

    async def _rpc(self, command: str, **request: Any) -> httpx.Response:
        # Every Kubo RPC command is a POST, even reads.
        response = await send_with_retries(
            self._client,
            "POST",
            f"{self.api_url}/api/v0/{command}",
            service=self.service,
            policy=self.policy,
            describe_error=lambda r: error_text(r, "Message"),
            transient=_transient,
            **request,
        )
        return response


def _transient(response: httpx.Response) -> bool:
    """Gateway trouble is worth retrying; a command error from Kubo itself is not.

    Kubo reports every failed command as HTTP 500 with {"Message", "Code", "Type": "error"}
    (bad arguments, "not pinned", a full disk); retrying the same call repeats the answer.
    """
    if response.status_code in (408, 425, 429, 502, 503, 504):
        return True
    if response.status_code != 500:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and body.get("Type") == "error")


def _last_json_line(body: str, service: str) -> dict[str, Any]:
    """The last object of an NDJSON stream; a streamed error object becomes PinningError."""
    last: dict[str, Any] | None = None
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise PinningResponseError(f"{service}: answered with a line that is not JSON") from None
        if not isinstance(value, dict):
            raise PinningResponseError(f"{service}: answered with JSON that is not an object")
        # An error after the headers went out arrives in the body (and the X-Stream-Error trailer).
        if value.get("Type") == "error":
            raise PinningError(f"{service}: {str(value.get('Message', 'stream error'))[:300]}")
        last = value
    if last is None:
        raise PinningResponseError(f"{service}: answered with an empty body")
    return last
