"""JSON-RPC transport for the minter: batches, and retries with backoff and jitter on transient faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from chain.errors import ChainUnavailable, RpcError

# HTTP statuses a provider or a proxy in front of it uses for "not now"; worth retrying.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# JSON-RPC error codes and phrases providers use for rate limits and overload.
_RETRY_CODES = frozenset({-32005, 429, -32603})
_RETRY_HINTS = ("rate limit", "too many requests", "limit exceeded", "try again", "timeout", "temporarily")


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
        message = self.rpc_message.lower()
        return self.rpc_code in _RETRY_CODES and any(hint in message for hint in _RETRY_HINTS)


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
    """One endpoint; `call` and `batch` retry timeouts, resets, 429 and 5xx with capped, jittered backoff."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 8,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 2.0,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.stats = RpcStats()
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the event loop that first uses it.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=64, force_close=False),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half the exponential step fixed, half random, so retries spread out."""
        step = min(self.backoff_cap_s, self.backoff_s * 2.0**attempt)
        return step / 2 + random.uniform(0, step / 2)

    async def _post_once(self, payload: Any) -> Any:
        self.stats.requests += 1
        try:
            async with self._client().post(self.url, json=payload) as response:
                if response.status in _RETRY_STATUSES:
                    # A 429 is refused before any work; other statuses may come from a
                    # proxy that had already forwarded the request.
                    raise _Transient(
                        f"HTTP {response.status}",
                        ambiguous=response.status != 429,
                        rate_limited=response.status == 429,
                    )
                if response.status >= 400:
                    text = (await response.text())[:200]
                    raise RpcError(f"HTTP {response.status} from the JSON-RPC endpoint: {text}")
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}", ambiguous=True) from exc
        try:
            return json.loads(body)
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
                    raise ChainUnavailable(f"{label}: {exc} (after {attempt + 1} attempts)") from None
            self.stats.retries += 1
            await asyncio.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; a JSON-RPC error raises RpcCallError (rate-limit errors are retried first)."""
        for attempt in range(self.retries + 1):
            self.stats.calls += 1
            payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
            body, ambiguous = await self._post(payload, method)
            if not isinstance(body, dict):
                raise RpcError(f"{method}: malformed JSON-RPC response")
            error = body.get("error")
            if not error:
                return body.get("result")
            failure = RpcCallError(method, error, ambiguous=ambiguous)
            if not failure.retryable or attempt == self.retries:
                raise failure
            self.stats.rate_limited += 1
            self.stats.retries += 1
            await asyncio.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Many calls in one HTTP request; each entry is its result or its RpcCallError (not raised).

        Entries refused for rate limits are retried; the others keep their answer.
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
                raise RpcError("malformed JSON-RPC batch response")
            answered = {entry.get("id"): entry for entry in body if isinstance(entry, dict)}
            again = []
            for call_id, index in ids.items():
                entry = answered.get(call_id)
                if entry is None:
                    again.append(index)
                    continue
                if entry.get("error"):
                    failure = RpcCallError(calls[index][0], entry["error"], ambiguous=ambiguous)
                    if failure.retryable:
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
                results[index] = RpcCallError(calls[index][0], {"code": -32000, "message": "missing from batch reply"})
        return results

    async def batch_strict(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Like `batch`, but the first error entry is raised."""
        results = await self.batch(calls)
        for result in results:
            if isinstance(result, RpcCallError):
                raise result
        return results
