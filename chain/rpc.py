"""The service's one JSON-RPC client: calls and batches over httpx, retried with backoff and jitter on transient faults.

Why a client of our own next to web3.py: the minter's pipelined raw sends and the history
reader's batched eth_getLogs need a lean one that batches, retries the way providers
throttle, and says when a failed send may still have arrived. Contract reads, writes and
deploys need ABI encoding, which is web3.py's job; `chain.web3` builds that AsyncWeb3 over
this same client, so every request the service makes goes through one transport.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from chain.errors import ChainUnavailable, RpcError

# HTTP statuses a provider or a proxy in front of it uses for "not now"; worth retrying.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# JSON-RPC error codes and phrases providers use for rate limits and overload.
_RETRY_CODES = frozenset({-32005, 429, -32603})
_RETRY_HINTS = ("rate limit", "too many requests", "limit exceeded", "try again", "timeout", "temporarily")
# Phrases providers use when an eth_getLogs range or result set is too large.
_RANGE_ERROR_HINTS = (
    "range",
    "too many",
    "limit exceeded",
    "query returned more than",
    "response size",
    "block range",
    "exceed",
)
# Phrases that blame the number of results rather than the width of the range.
_RESULT_ERROR_HINTS = ("result", "response size", "too many logs")
# "this block range should work: [0x10, 0x5f]" (Alchemy) names a range that will pass.
_HINT_PAIR = re.compile(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]")
# "maximum block range: 5000", "up to a 2K block range", "limited to a 10,000 range", "range of 500 blocks".
_HINT_NUMBER = re.compile(
    r"(?:range(?:\s+(?:is|of|limit|:))*\s*:?\s*(\d[\d,]*)(k?)\b)|(?:(\d[\d,]*)(k?)\s*(?:-\s*)?(?:block|range))"
)


class RpcCallError(RpcError):
    """The node answered one call with a JSON-RPC error object.

    `ambiguous` is True when an earlier attempt of the same call failed in a way that
    leaves open whether the node acted on it (a timeout or a reset after the request
    left): a rejected resend of a transaction then does not prove it was never accepted.
    """

    def __init__(self, method: str, error: dict[str, Any], *, ambiguous: bool = False) -> None:
        self.method = method
        self.rpc_code = error.get("code")
        self.rpc_message = str(error.get("message", ""))
        self.data = error.get("data")
        self.ambiguous = ambiguous
        super().__init__(f"{method}: {self.rpc_message[:300]} (code {self.rpc_code})")

    @property
    def retryable(self) -> bool:
        """A rate-limit or overload refusal: the same call may pass a moment later."""
        message = self.rpc_message.lower()
        return self.rpc_code in _RETRY_CODES and any(hint in message for hint in _RETRY_HINTS)

    @property
    def is_range_limit(self) -> bool:
        """The provider refused an eth_getLogs range or result set as too large."""
        message = self.rpc_message.lower()
        return self.method == "eth_getLogs" and any(h in message for h in _RANGE_ERROR_HINTS)

    @property
    def is_result_limit(self) -> bool:
        """The refusal blames the result count (depends on density) rather than a fixed block cap."""
        message = self.rpc_message.lower()
        return self.is_range_limit and any(h in message for h in _RESULT_ERROR_HINTS)

    def suggested_window(self) -> int | None:
        """The block window the provider's message says will pass, when it says one."""
        message = self.rpc_message.lower()
        pair = _HINT_PAIR.search(message)
        if pair:
            low, high = int(pair.group(1), 16), int(pair.group(2), 16)
            return high - low + 1 if high >= low else None
        for match in _HINT_NUMBER.finditer(message):
            digits, kilo = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
            value = int(digits.replace(",", "")) * (1000 if kilo else 1)
            if value > 0:
                return value
        return None


@dataclass(frozen=True)
class RpcErrorTypes:
    """The exception classes a client raises; a library passes subclasses of these to keep its own error codes."""

    unavailable: type[ChainUnavailable] = ChainUnavailable
    """The endpoint could not be reached, or kept failing, through every retry."""
    failed: type[RpcError] = RpcError
    """The endpoint refused the request (an HTTP status not worth retrying) or answered something not JSON-RPC."""
    call: type[RpcCallError] = RpcCallError
    """The node answered a call with a JSON-RPC error object."""


@dataclass
class RpcStats:
    """What the transport has seen; the minter exports these as metrics."""

    requests: int = 0
    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    transport_errors: int = 0


class _Transient(Exception):
    def __init__(self, reason: str, *, ambiguous: bool, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.ambiguous = ambiguous
        self.rate_limited = rate_limited


class JsonRpc:
    """One endpoint; `call` and `batch` retry timeouts, resets, 429 and 5xx with capped, jittered backoff.

    `retry_rate_limits` also retries calls the node refused with a rate-limit error object
    (the minter wants that; the history reader turns such refusals into smaller ranges).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 8,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 2.0,
        retry_rate_limits: bool = True,
        errors: RpcErrorTypes | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.retry_rate_limits = retry_rate_limits
        self.errors = errors or RpcErrorTypes()
        self.stats = RpcStats()
        self._ids = itertools.count(1)
        self._client = client
        self._owns_client = client is None

    def _http(self) -> httpx.AsyncClient:
        # Created lazily and again after aclose(): its connections belong to the event loop that opened them.
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
                trust_env=False,
            )
            self._owns_client = True
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> JsonRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half the exponential step fixed, half random, so retries spread out."""
        step = min(self.backoff_cap_s, self.backoff_s * 2.0**attempt)
        return step / 2 + random.uniform(0, step / 2)

    async def _post_once(self, payload: Any) -> Any:
        self.stats.requests += 1
        try:
            response = await self._http().post(
                self.url, content=json.dumps(payload), headers={"Content-Type": "application/json"}
            )
        except (httpx.RequestError, OSError) as exc:  # timeouts, resets, refused connections, bad encodings
            raise _Transient(f"{type(exc).__name__}: {exc}", ambiguous=True) from exc
        if response.status_code in _RETRY_STATUSES:
            # A 429 is refused before any work; other statuses may come from a
            # proxy that had already forwarded the request.
            raise _Transient(
                f"HTTP {response.status_code}",
                ambiguous=response.status_code != 429,
                rate_limited=response.status_code == 429,
            )
        if response.status_code >= 400:
            raise self.errors.failed(f"HTTP {response.status_code} from the JSON-RPC endpoint: {response.text[:200]}")
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise _Transient("malformed JSON-RPC response", ambiguous=True) from exc

    async def _post(self, payload: Any, label: str) -> tuple[Any, bool]:
        """The decoded body and whether any failed attempt was ambiguous."""
        ambiguous = False
        for attempt in range(self.retries + 1):
            try:
                return await self._post_once(payload), ambiguous
            except _Transient as exc:
                ambiguous = ambiguous or exc.ambiguous
                self.stats.transport_errors += 1
                self.stats.rate_limited += exc.rate_limited
                if attempt == self.retries:
                    raise self.errors.unavailable(f"{label}: {exc} (after {attempt + 1} attempts)") from None
            self.stats.retries += 1
            await asyncio.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    async def envelope(self, method: str, params: Sequence[Any] = ()) -> dict[str, Any]:
        """One call's whole response object (`result` or `error`), transport faults retried: for web3's provider."""
        self.stats.calls += 1
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        body, _ = await self._post(payload, method)
        if not isinstance(body, dict):
            raise self.errors.failed(f"{method}: malformed JSON-RPC response")
        return body

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; a JSON-RPC error raises RpcCallError (rate-limit errors are retried first, if so set)."""
        for attempt in range(self.retries + 1):
            self.stats.calls += 1
            payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
            body, ambiguous = await self._post(payload, method)
            if not isinstance(body, dict):
                raise self.errors.failed(f"{method}: malformed JSON-RPC response")
            error = body.get("error")
            if not error:
                return body.get("result")
            failure = self.errors.call(method, error, ambiguous=ambiguous)
            if not (self.retry_rate_limits and failure.retryable) or attempt == self.retries:
                raise failure
            self.stats.rate_limited += 1
            self.stats.retries += 1
            await asyncio.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Many calls in one HTTP request, results in call order; the first error entry is raised."""
        results = await self.batch_settled(calls)
        for result in results:
            if isinstance(result, RpcCallError):
                raise result
        return results

    async def batch_settled(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Like `batch`, but each entry is its result or its RpcCallError (not raised).

        Entries missing from the reply, and (if so set) entries refused for rate limits,
        are sent again; the others keep their answer.
        """
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(self.retries + 1):
            if not todo:
                break
            self.stats.calls += len(todo)
            ids = {next(self._ids): index for index in todo}
            payload = [
                {"jsonrpc": "2.0", "id": call_id, "method": calls[index][0], "params": list(calls[index][1])}
                for call_id, index in ids.items()
            ]
            body, ambiguous = await self._post(payload, f"batch of {len(todo)}")
            if isinstance(body, dict) and body.get("error"):
                # Some nodes answer a whole batch with one error object.
                body = [{"id": call_id, "error": body["error"]} for call_id in ids]
            if not isinstance(body, list):
                raise self.errors.failed("malformed JSON-RPC batch response")
            answered = {entry.get("id"): entry for entry in body if isinstance(entry, dict)}
            again = []
            for call_id, index in ids.items():
                entry = answered.get(call_id)
                if entry is None:
                    again.append(index)
                    continue
                if entry.get("error"):
                    failure = self.errors.call(calls[index][0], entry["error"], ambiguous=ambiguous)
                    if self.retry_rate_limits and failure.retryable:
                        again.append(index)
                    results[index] = failure
                else:
                    results[index] = entry.get("result")
            todo = again
            if todo and attempt < self.retries:
                self.stats.retries += 1
                await asyncio.sleep(self.backoff(attempt))
        for index in todo:
            if results[index] is None:
                missing = {"code": -32000, "message": "missing from batch reply"}
                results[index] = self.errors.call(calls[index][0], missing)
        return results
