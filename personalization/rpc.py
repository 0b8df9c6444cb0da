"""A small async JSON-RPC client with batching, retries and provider-limit detection."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import Sequence
from typing import Any

import httpx

from personalization.errors import HistoryError

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


class RpcCallError(HistoryError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.method = method
        self.rpc_code = error.get("code")
        self.rpc_message = str(error.get("message", ""))
        super().__init__(f"{method} failed: {self.rpc_message} (code {self.rpc_code})")

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


class JsonRpcClient:
    """Talks to any EVM JSON-RPC endpoint; retries transport faults with backoff and jitter."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.retries = retries
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        self._ids = itertools.count(1)
        self.calls = 0  # JSON-RPC calls made (a batch counts each entry)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> JsonRpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _post(self, payload: Any) -> Any:
        delay = 0.1
        for attempt in range(self.retries + 1):
            try:
                response = await self._client.post(self.url, json=payload)
                if response.status_code == 429 or response.status_code >= 500:
                    raise httpx.HTTPStatusError(
                        f"HTTP {response.status_code}", request=response.request, response=response
                    )
                response.raise_for_status()
                return response.json()
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                retryable = status is None or status == 429 or status >= 500
                if attempt == self.retries or not retryable:
                    raise HistoryError(f"JSON-RPC endpoint unreachable: {type(exc).__name__}") from exc
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        self.calls += 1
        body = await self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        if not isinstance(body, dict):
            raise HistoryError(f"{method}: malformed JSON-RPC response")
        if body.get("error"):
            raise RpcCallError(method, body["error"])
        return body.get("result")

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send many calls in one HTTP request; results come back in call order."""
        if not calls:
            return []
        self.calls += len(calls)
        ids = [next(self._ids) for _ in calls]
        body = await self._post(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in zip(ids, calls, strict=True)]
        )
        if not isinstance(body, list):
            # Some nodes answer a batch with one error object; surface it.
            if isinstance(body, dict) and body.get("error"):
                raise RpcCallError(calls[0][0], body["error"])
            raise HistoryError("malformed JSON-RPC batch response")
        by_id = {entry.get("id"): entry for entry in body if isinstance(entry, dict)}
        results = []
        for call_id, (method, _) in zip(ids, calls, strict=True):
            entry = by_id.get(call_id)
            if entry is None:
                raise HistoryError(f"{method}: missing from batch response")
            if entry.get("error"):
                raise RpcCallError(method, entry["error"])
            results.append(entry.get("result"))
        return results
