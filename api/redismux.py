"""One auto-pipelined Redis connection for the request hot path (authentication, status reads).

redis-py checks a connection out of its pool, writes, awaits the reply and checks it back in for
every command: ~40 µs of Python per call on this box, more than the call itself. Here every
caller in the process shares one connection: commands are written as they come (writes issued in
the same loop iteration leave in one segment), and replies, which Redis sends in order, resolve
a FIFO of futures; hiredis parses them. Errors are redis-py's own exception types, so the API's
error handlers treat both clients alike (connection lost → 503, never a 500).

A lost connection fails what was in flight and the next command reconnects; a command whose
reply does not arrive within `timeout_s` fails with TimeoutError and drops the connection (the
FIFO cannot skip a late reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.redis_urls import SentinelTarget, is_sentinel_url, parse_sentinel_url, sentinel_manager


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._break(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not pending:  # a reply nobody waits for: the stream is out of step
                self._break(RedisConnectionError("unexpected reply from Redis"))
                return
            future = pending.popleft()
            if not future.done():
                if isinstance(reply, ResponseError):
                    error = _response_error(reply)
                    if isinstance(error, ReadOnlyError):
                        # The primary was demoted (a failover): this connection is done; the next
                        # command reconnects to the new one (the sentinels say where).
                        future.set_exception(RedisConnectionError("the Redis primary is now a replica"))
                        self._break(RedisConnectionError("the Redis primary is now a replica"))
                        return
                    future.set_exception(error)
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(RedisConnectionError("Connection to Redis lost"))

    def _break(self, error: Exception) -> None:
        """Give up on this connection: fail what waits, drop it (the next command reconnects)."""
        self._fail(error)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: Exception) -> None:
        self.closed = True
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)


# redis-py's own mapping of an error reply to its exception type (unannotated there).
_parse_error: Callable[[str], Exception] = BaseParser.parse_error


def _response_error(error: ResponseError) -> Exception:
    """redis-py's own mapping: LOADING → BusyLoadingError (a ConnectionError: 503), NOSCRIPT, NOAUTH, …"""
    return _parse_error(str(error))


class RedisMux:
    """`await mux.execute("GET", key)`; `await mux.eval_script(script, keys, args)` (EVALSHA, loads once)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 5.0) -> None:
        self._sentinel: SentinelTarget | None = None
        if is_sentinel_url(url):
            # The primary's address comes from the sentinels at each connect (a failover moves it).
            self._sentinel = parse_sentinel_url(url)
            url = f"{'rediss' if self._sentinel.ssl else 'redis'}://primary/{self._sentinel.db}"
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._path = parts.path
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        db = parts.path.strip("/") if parts.scheme != "unix" else ""
        query = dict(item.partition("=")[::2] for item in parts.query.split("&") if item)
        self._db = int(db or query.get("db") or 0)
        if parts.scheme == "unix" and query.get("password"):
            self._password = query["password"]
        if self._sentinel is not None:
            self._username, self._password = self._sentinel.username, self._sentinel.password
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._shas: dict[str, str] = {}
        self._sentinels: Sentinel | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if self._sentinel is not None:
                    self._host, self._port = await self._primary()
                if self._scheme == "unix":
                    _, protocol = await loop.create_unix_connection(_Protocol, self._path)
                else:
                    context = ssl.create_default_context() if self._scheme == "rediss" else None
                    _, protocol = await loop.create_connection(_Protocol, self._host, self._port, ssl=context)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {type(exc).__name__}") from None
        setup: list[tuple[Any, ...]] = []
        if self._password is not None:
            setup.append(("AUTH", self._username, self._password) if self._username else ("AUTH", self._password))
        if self._db:
            setup.append(("SELECT", self._db))
        try:
            for command in setup:
                await self._send(protocol, command)
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        return protocol

    async def _primary(self) -> tuple[str, int]:
        """The sentinels' current primary (RedisConnectionError when none names one)."""
        assert self._sentinel is not None
        if self._sentinels is None:
            self._sentinels = sentinel_manager(self._sentinel)
        host, port = await self._sentinels.discover_master(self._sentinel.service)
        return str(host), int(port)

    async def _ready(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        if self._connecting is None:  # one connect for every caller waiting on it
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            protocol = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        self._protocol = protocol
        return protocol

    async def _send(self, protocol: _Protocol, command: tuple[Any, ...]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        assert protocol.transport is not None
        protocol.pending.append(future)
        protocol.transport.write(hiredis.pack_command(command))
        try:
            async with asyncio.timeout(self.timeout_s):
                return await future
        except TimeoutError:
            protocol.closed = True  # replies after this one would land on the wrong futures
            protocol.transport.abort()
            raise RedisTimeoutError("Timeout reading from Redis") from None

    async def execute(self, *command: Any) -> Any:
        return await self._send(await self._ready(), command)

    async def eval_script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        sha = self._shas.get(script)  # Redis names scripts by their SHA-1
        if sha is None:
            sha = self._shas[script] = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.execute("EVAL", script, len(keys), *keys, *args)  # loads it for next time

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
            self._connecting = None
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
        if self._sentinels is not None:
            await self._sentinels.aclose()
            self._sentinels = None
