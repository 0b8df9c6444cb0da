"""Where pinned bytes live: the Pinner interface, what it returns, its errors, and the wait policy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx

from chain.errors import ChainError
from ipfs.cid import InvalidCID, encode_cid, parse_cid

__all__ = [
    "PIN_STATUSES",
    "AcceptLevel",
    "CIDMismatch",
    "PinFailed",
    "PinStatusName",
    "PinTimeout",
    "PinnedObject",
    "Pinner",
    "PinningError",
    "PinningRejected",
    "PinningResponseError",
    "PinningUnavailable",
    "WaitPolicy",
    "canonical_cid",
    "error_text",
    "send_with_retries",
    "sniff_content_type",
    "verified_object",
]

PinStatusName = Literal["queued", "pinning", "pinned", "failed"]
PIN_STATUSES: tuple[PinStatusName, ...] = ("queued", "pinning", "pinned", "failed")
# "pinned": the service holds the whole DAG. "queued": the service has accepted the
# request (queued, pinning or pinned); availability then rests on the service's word.
AcceptLevel = Literal["pinned", "queued"]


class PinningError(ChainError):
    """Pinning or fetching pinned bytes failed."""

    code: ClassVar[str] = "pinning_error"


class CIDMismatch(PinningError):
    """Bytes do not hash to the CID they were stored or announced under.

    From a remote service this means it built a different DAG for our bytes (a chunker,
    CID version, raw-leaves or import profile other than `ipfs add --cid-version=1`); a
    token must never point at a CID other than the one we computed, so it is permanent.
    """

    code: ClassVar[str] = "cid_mismatch"

    def __init__(self, expected: str, actual: str, *, service: str | None = None) -> None:
        if service is None:
            message = f"content under {expected} hashes to {actual}"
        else:
            message = (
                f"{service} returned CID {actual} for bytes whose CID is {expected}; "
                "check its chunker (size-262144), CID version (1), raw leaves and import profile"
            )
        super().__init__(message)
        self.expected = expected
        self.actual = actual
        self.service = service


class PinningUnavailable(PinningError):
    """The service could not be reached or kept failing (5xx, 429, timeouts) after retries."""

    code: ClassVar[str] = "pinning_unavailable"


class PinningRejected(PinningError):
    """The service refused the request (4xx): bad credentials, quota, a request it cannot take."""

    code: ClassVar[str] = "pinning_rejected"

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class PinningResponseError(PinningError):
    """The service answered with something its protocol does not allow."""

    code: ClassVar[str] = "pinning_bad_response"


class PinFailed(PinningError):
    """The service reports the pin as `failed`."""

    code: ClassVar[str] = "pin_failed"


class PinTimeout(PinningError):
    """The pin did not reach the accepted status within the wait limit; it may still get there."""

    code: ClassVar[str] = "pin_timeout"

    def __init__(self, cid: str, timeout_s: float, *, service: str, last_status: str | None = None) -> None:
        seen = f" (last status: {last_status})" if last_status else ""
        super().__init__(f"{service}: {cid} not pinned within {timeout_s:g}s{seen}")
        self.cid = cid
        self.timeout_s = timeout_s
        self.service = service
        self.last_status = last_status


@dataclass(frozen=True, slots=True)
class PinnedObject:
    """Pinned bytes together with the CID they hash to and their media type."""

    cid: str
    data: bytes
    content_type: str


@runtime_checkable
class Pinner(Protocol):
    """Stores bytes under their CID (`ipfs add --cid-version=1`) and reads them back."""

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Store `data` and return its CID; pinning the same bytes again is a no-op."""
        ...

    async def get(self, cid: str) -> PinnedObject | None:
        """Return the object pinned under `cid`, or None when it is not pinned here."""
        ...


@dataclass(frozen=True, slots=True)
class WaitPolicy:
    """How long a pin may take and how hard each request is retried."""

    accept: AcceptLevel = "pinned"
    timeout_s: float = 300.0  # the whole pin, from bytes to an accepted status
    request_timeout_s: float = 60.0  # one HTTP request
    retries: int = 3  # extra attempts per request after a transient failure
    backoff_s: float = 0.5  # first retry delay; doubles, with jitter
    poll_s: float = 1.0  # first status poll interval; grows to max_poll_s
    max_poll_s: float = 10.0

    def __post_init__(self) -> None:
        if self.accept not in ("pinned", "queued"):
            raise ValueError("accept must be 'pinned' or 'queued'")
        if self.timeout_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.retries < 0 or self.backoff_s < 0 or self.poll_s <= 0 or self.max_poll_s < self.poll_s:
            raise ValueError("retries >= 0, backoff_s >= 0 and 0 < poll_s <= max_poll_s")

    def accepts(self, status: PinStatusName) -> bool:
        """Whether a pin in `status` is good enough to mint against."""
        if self.accept == "queued":
            return status in ("queued", "pinning", "pinned")
        return status == "pinned"

    def http_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.request_timeout_s, connect=min(10.0, self.request_timeout_s))


# What a flaky network or an overloaded service does; anything else is a bug or a refusal.
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 30.0


async def send_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str,
    policy: WaitPolicy,
    describe_error: Callable[[httpx.Response], str],
    transient: Callable[[httpx.Response], bool] | None = None,
    **request: Any,
) -> httpx.Response:
    """Send one request, retrying transient failures; returns a 2xx response or raises.

    A non-2xx answer that `transient` (default: 408, 425, 429 and 5xx gateway trouble)
    does not call transient raises PinningRejected at once: retrying cannot fix a bad
    token. Transient failures that outlast the retries raise PinningUnavailable.
    """
    is_transient = transient or (lambda r: r.status_code in _TRANSIENT_STATUS)
    delay = policy.backoff_s
    last_problem = "no attempt made"
    for attempt in range(policy.retries + 1):
        if attempt:
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay *= 2
        try:
            response = await client.request(method, url, timeout=policy.http_timeout(), **request)
        except httpx.TransportError as exc:
            # Never the URL's query or headers: tokens can sit there.
            last_problem = f"{type(exc).__name__}"
            continue
        if response.is_success:
            return response
        detail = describe_error(response)
        if not is_transient(response):
            raise PinningRejected(f"{service}: HTTP {response.status_code}: {detail}", status_code=response.status_code)
        last_problem = f"HTTP {response.status_code}: {detail}"
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isascii() and retry_after.isdigit():  # not ², which float() refuses
            delay = max(delay, min(float(retry_after), _MAX_RETRY_AFTER_S))
    raise PinningUnavailable(f"{service}: {method} failed after {policy.retries + 1} attempts ({last_problem})")


def error_text(response: httpx.Response, *keys: str, limit: int = 300) -> str:
    """A short, printable reason from an error response: the first of `keys` found, else the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    node: Any = body
    for key in keys:
        if isinstance(node, dict) and key in node:
            node = node[key]
        else:
            node = None
            break
    text = node if isinstance(node, str) and keys else response.text
    return " ".join(text.split())[:limit] or response.reason_phrase


def canonical_cid(cid: object, *, service: str) -> str:
    """The canonical string of a CID a service sent us (base32 v1), or PinningResponseError."""
    try:
        parsed = parse_cid(cid)  # type: ignore[arg-type]  # parse_cid checks the type itself
    except InvalidCID as exc:
        raise PinningResponseError(f"{service} sent an invalid CID: {exc}") from None
    return encode_cid(*parsed)


def sniff_content_type(data: bytes) -> str:
    """Best guess at the media type of bytes fetched back from a service that does not keep it.

    Only the two kinds this service pins are recognised; the rest is octet-stream.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:1] in (b"{", b"["):
        return "application/json"
    return "application/octet-stream"


async def verified_object(cid: str, response: httpx.Response) -> PinnedObject:
    """A gateway's answer for `cid`, trusted only once its bytes hash back to that CID."""
    from ipfs.cid import cid_for_bytes

    data = response.content
    actual = await asyncio.to_thread(cid_for_bytes, data)
    if actual != cid:
        raise CIDMismatch(cid, actual)
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    return PinnedObject(cid=cid, data=data, content_type=content_type or "application/octet-stream")
