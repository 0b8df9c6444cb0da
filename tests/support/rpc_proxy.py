"""A fault-injecting JSON-RPC proxy on loopback: forwards to a node, and drops, refuses or delays calls on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from eth_utils.crypto import keccak

from devstack.anvil import free_port


@dataclass
class Faults:
    """What to break; rates are probabilities per HTTP request. Change them while the proxy runs."""

    drop_send_rate: float = 0.0
    """eth_sendRawTransaction answered with the right hash but never forwarded: a silent mempool loss."""
    lost_reply_rate: float = 0.0
    """eth_sendRawTransaction forwarded, then answered 504: the caller cannot know it arrived."""
    http_429_rate: float = 0.0
    """Any request refused with HTTP 429 before forwarding."""
    http_502_rate: float = 0.0
    """Any request answered 502 before forwarding."""
    delay_rate: float = 0.0
    delay_s: float = 0.0
    nonce_too_low: int = 0
    """The next N sends are refused with 'nonce too low' (not forwarded)."""
    drop_sends_next: int = 0
    """The next N sends are dropped as with drop_send_rate (so a test is sure to see one)."""
    lose_replies_next: int = 0
    """The next N forwarded sends lose their reply as with lost_reply_rate."""
    seed: int | None = None


@dataclass
class Injected:
    """What the proxy actually did, so a test can prove its faults happened."""

    requests: int = 0
    sends: int = 0
    dropped_sends: list[str] = field(default_factory=list)
    lost_replies: int = 0
    http_429: int = 0
    http_502: int = 0
    delayed: int = 0
    nonce_too_low: int = 0


class RpcProxy:
    """An aiohttp server on 127.0.0.1 forwarding JSON-RPC (single and batch) to `upstream`."""

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        self.upstream = upstream
        self.faults = faults or Faults()
        self.injected = Injected()
        self.port = free_port()
        self._random = random.Random(self.faults.seed)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RpcProxy:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> RpcProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.injected.requests += 1
        faults = self.faults
        if self._roll(faults.http_429_rate):
            self.injected.http_429 += 1
            return web.Response(status=429, text="Too Many Requests")
        if self._roll(faults.http_502_rate):
            self.injected.http_502 += 1
            return web.Response(status=502, text="Bad Gateway")
        if self._roll(faults.delay_rate):
            self.injected.delayed += 1
            await asyncio.sleep(faults.delay_s)
        payload = json.loads(body)
        send = isinstance(payload, dict) and payload.get("method") == "eth_sendRawTransaction"
        if send:
            self.injected.sends += 1
            if faults.nonce_too_low > 0:
                faults.nonce_too_low -= 1
                self.injected.nonce_too_low += 1
                error = {"code": -32003, "message": "nonce too low"}
                return web.json_response({"jsonrpc": "2.0", "id": payload.get("id"), "error": error})
            if faults.drop_sends_next > 0 or self._roll(faults.drop_send_rate):
                faults.drop_sends_next = max(0, faults.drop_sends_next - 1)
                raw = bytes.fromhex(payload["params"][0].removeprefix("0x"))
                tx_hash = "0x" + keccak(raw).hex()
                self.injected.dropped_sends.append(tx_hash)
                return web.json_response({"jsonrpc": "2.0", "id": payload.get("id"), "result": tx_hash})
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as upstream:
            answer = await upstream.read()
            status = upstream.status
        if send and (faults.lose_replies_next > 0 or self._roll(faults.lost_reply_rate)):
            faults.lose_replies_next = max(0, faults.lose_replies_next - 1)
            self.injected.lost_replies += 1
            return web.Response(status=504, text="Gateway Timeout")
        return web.Response(body=answer, status=status, content_type="application/json")


@contextlib.contextmanager
def proxy_in_thread(upstream: str, faults: Faults | None = None) -> Iterator[RpcProxy]:
    """Run the proxy on its own event loop in a thread: for tests that drive OS processes."""
    loop = asyncio.new_event_loop()
    proxy = RpcProxy(upstream, faults)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(proxy.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="rpc-proxy", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
