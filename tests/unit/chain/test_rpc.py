"""The JSON-RPC client against a scripted endpoint: what it retries, what it raises, and as which class."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chain.errors import ChainUnavailable, RpcError
from chain.rpc import JsonRpc, RpcCallError
from personalization.errors import HISTORY_RPC_ERRORS, HistoryError, HistoryRpcError, HistoryUnavailable
from personalization.history import history_rpc

Reply = Callable[[Any], httpx.Response]


def _client(replies: list[Reply], **options: Any) -> tuple[JsonRpc, list[Any]]:
    """A JsonRpc whose HTTP requests are answered by `replies` in turn; the bodies it sent are recorded."""
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        return replies[min(len(sent), len(replies)) - 1](body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return JsonRpc("http://node.test", client=http, backoff_s=0.001, backoff_cap_s=0.002, **options), sent


def _result(value: Any) -> Reply:
    def reply(body: Any) -> httpx.Response:
        if isinstance(body, list):
            return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": e["id"], "result": value} for e in body])
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": value})

    return reply


def _error(code: int, message: str) -> Reply:
    def reply(body: Any) -> httpx.Response:
        return httpx.Response(
            200, json={"jsonrpc": "2.0", "id": body["id"], "error": {"code": code, "message": message}}
        )

    return reply


def _status(status: int) -> Reply:
    return lambda body: httpx.Response(status, text="not now")


async def test_transient_statuses_are_retried_and_counted() -> None:
    rpc, sent = _client([_status(503), _status(429), _result("0x1")])
    assert await rpc.call("eth_chainId") == "0x1"
    assert len(sent) == 3
    assert (rpc.stats.retries, rpc.stats.rate_limited) == (2, 1)


async def test_a_dead_endpoint_raises_chain_unavailable_after_the_retries() -> None:
    rpc, sent = _client([_status(502)], retries=2)
    with pytest.raises(ChainUnavailable, match="after 3 attempts"):
        await rpc.call("eth_blockNumber")
    assert len(sent) == 3


async def test_a_refusing_status_is_not_retried() -> None:
    rpc, sent = _client([_status(401)])
    with pytest.raises(RpcError, match="HTTP 401"):
        await rpc.call("eth_blockNumber")
    assert len(sent) == 1


async def test_rate_limit_answers_are_retried_only_when_asked() -> None:
    limited = _error(-32005, "rate limit exceeded, try again")
    rpc, sent = _client([limited, _result("0x2")])
    assert await rpc.call("eth_blockNumber") == "0x2"
    assert len(sent) == 2
    strict, sent = _client([limited, _result("0x2")], retry_rate_limits=False)
    with pytest.raises(RpcCallError, match="rate limit"):
        await strict.call("eth_blockNumber")
    assert len(sent) == 1


async def test_batch_raises_the_first_error_and_batch_settled_keeps_each_answer() -> None:
    def mixed(body: Any) -> httpx.Response:
        first, second = body
        return httpx.Response(
            200,
            json=[
                {"jsonrpc": "2.0", "id": first["id"], "result": "0x1"},
                {"jsonrpc": "2.0", "id": second["id"], "error": {"code": 3, "message": "execution reverted"}},
            ],
        )

    rpc, _ = _client([mixed])
    calls = [("eth_call", [{}]), ("eth_call", [{}])]
    answers = await rpc.batch_settled(calls)
    assert answers[0] == "0x1"
    assert isinstance(answers[1], RpcCallError)
    assert answers[1].rpc_message == "execution reverted"
    with pytest.raises(RpcCallError, match="execution reverted"):
        await rpc.batch(calls)
    assert await rpc.batch([]) == []


async def test_an_entry_missing_from_a_batch_reply_is_sent_again() -> None:
    def drop_second(body: Any) -> httpx.Response:
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": body[0]["id"], "result": "0xa"}])

    rpc, sent = _client([drop_second, _result("0xb")])
    assert await rpc.batch([("eth_blockNumber", []), ("eth_chainId", [])]) == ["0xa", "0xb"]
    assert [len(body) for body in sent] == [2, 1]


async def test_history_reads_raise_history_errors_that_are_chain_errors_too() -> None:
    rpc = history_rpc("http://127.0.0.1:9", retries=0, timeout_s=1.0)
    with pytest.raises(HistoryUnavailable) as unreachable:
        await rpc.call("eth_blockNumber")
    await rpc.aclose()
    assert isinstance(unreachable.value, HistoryError)
    assert isinstance(unreachable.value, ChainUnavailable)
    assert unreachable.value.code == "history_unavailable"

    refused, _ = _client([_error(-32000, "header not found")], errors=HISTORY_RPC_ERRORS)
    with pytest.raises(HistoryRpcError, match="header not found") as answered:
        await refused.call("eth_getLogs", [{}])
    assert isinstance(answered.value, RpcCallError)
    assert answered.value.code == "history_unavailable"
