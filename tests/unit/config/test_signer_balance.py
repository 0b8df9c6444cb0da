"""The one signer-balance check: one threshold, one comparison, alerts fed by any reader, signed one way."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from api.inbound import verify_signature
from config.chain_check import BalanceWatch, read_signer_balance, rpc_balance, signer_balance_floor_wei, webhook_alert
from config.settings import Settings
from webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER

SIGNER = "0x" + "ab" * 20


def test_the_floor_is_the_one_setting() -> None:
    settings = Settings(min_signer_balance_wei=12345)  # type: ignore[call-arg]
    assert signer_balance_floor_wei(settings) == 12345


def test_a_balance_at_the_floor_is_not_low_and_one_wei_under_is() -> None:
    balances = {SIGNER: 100}

    async def read(address: str) -> int:
        return balances[address]

    at_floor = asyncio.run(read_signer_balance(read, SIGNER, threshold_wei=100, clock=lambda: 7.0))
    assert (at_floor.low, at_floor.balance_wei, at_floor.checked_at) == (False, 100, 7.0)
    balances[SIGNER] = 99
    assert asyncio.run(read_signer_balance(read, SIGNER, threshold_wei=100)).low


def test_rpc_balance_reads_eth_get_balance_at_latest() -> None:
    calls: list[tuple[str, list[object]]] = []

    async def call(method: str, params: object = ()) -> str:
        calls.append((method, list(params)))  # type: ignore[call-overload]
        return hex(10**18)

    async def read() -> int:
        return await rpc_balance(call)(SIGNER)

    assert asyncio.run(read()) == 10**18
    assert calls == [("eth_getBalance", [SIGNER, "latest"])]


def test_observed_readings_alert_once_per_period_without_reading_the_chain() -> None:
    now = [1000.0]
    alerted: list[int] = []

    async def never_read(address: str) -> int:
        raise AssertionError("observe must not read the balance itself")

    async def on_low(reading: object) -> None:
        alerted.append(reading.balance_wei)  # type: ignore[attr-defined]

    watch = BalanceWatch(
        never_read, SIGNER, chain_id=31337, threshold_wei=100, on_low=on_low, realert_s=600, clock=lambda: now[0]
    )

    async def feed() -> None:
        assert not (await watch.observe(100)).low
        assert (await watch.observe(50)).low
        now[0] += 60
        await watch.observe(40)  # still low, alerted a minute ago
        now[0] += 600
        await watch.observe(30)

    asyncio.run(feed())
    assert alerted == [50, 30]
    assert watch.alerts_sent == 2
    assert watch.health()["status"] == "low"


def test_the_alert_is_signed_with_the_status_webhook_scheme() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    async def alert_once() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            hook = webhook_alert("http://alerts.test/hook", secret="whsec_alerts", client=client)
            watch = BalanceWatch(rpc_balance(_one_wei), SIGNER, chain_id=8453, threshold_wei=10, on_low=hook)
            await watch.check()

    asyncio.run(alert_once())
    (request,) = sent
    body = request.content
    # The receiver's check for status webhooks (and inbound events) accepts it as is.
    timestamp, signature = request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]
    verify_signature("whsec_alerts", timestamp, signature, body, tolerance_s=60, now=float(timestamp))
    assert "PersonaMint-Signature" not in request.headers
    assert json.loads(body)["data"]["status"] == "low"
    assert json.loads(body)["data"]["chain_id"] == 8453


async def _one_wei(method: str, params: object = ()) -> str:
    return "0x1"


def test_an_alert_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="signing secret"):
        webhook_alert("http://alerts.test/hook", secret="")


def test_the_retired_threshold_is_refused_with_its_replacement_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAMINT_SIGNER_LOW_BALANCE_ETH", "0.1")
    with pytest.raises(ValueError, match="PERSONAMINT_MIN_SIGNER_BALANCE_WEI"):
        Settings()  # type: ignore[call-arg]
