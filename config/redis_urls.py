"""Redis URLs and the clients built from them: one node (`redis://`, `rediss://`, `unix://`) or a
Sentinel-managed primary (`redis+sentinel://`, `rediss+sentinel://`).

A Sentinel URL names the sentinels, the service (the primary's name in the sentinels' config) and
the database:

    redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/<service>[/<db>]
        [?sentinel_password=…&sentinel_username=…]

The password in the user part is the primary's; `sentinel_password` (query) is the sentinels' own
when they require one. `rediss+sentinel://` speaks TLS to the primary and replicas (the sentinels
are reached with the same TLS setting). Every connection asks a sentinel for the current primary
when it opens, and a connection to a primary that has been demoted (READONLY) is dropped and its
command fails as a ConnectionError, so the API answers 503 and the next command reaches the new
primary: what redis-py's `SentinelConnectionPool` does, here with the blocking pool every process
uses (bounded connections, a wait for a free one).

Writes that must survive a failover are followed by `WAIT`: see `Replication`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobs.keys import REPLICATION_PROBE_KEY

NODE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379


class RedisUrlError(ValueError):
    """A Redis URL this service cannot use (the message says what is wrong, never the password)."""


@dataclass(frozen=True)
class SentinelTarget:
    """What a `redis+sentinel://` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    ssl: bool = False


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def check_redis_url(url: str) -> str:
    """`url` if this service can use it; RedisUrlError saying why not otherwise."""
    scheme = url.partition("://")[0].lower()
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
    elif scheme not in NODE_SCHEMES or "://" not in url:
        accepted = ", ".join(f"{s}://" for s in (*NODE_SCHEMES, *SENTINEL_SCHEMES))
        raise RedisUrlError(f"a Redis URL starts with one of {accepted}")
    return url


def parse_sentinel_url(url: str) -> SentinelTarget:
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SENTINEL_SCHEMES:
        raise RedisUrlError("not a redis+sentinel:// URL")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    credentials, at, hosts = netloc.rpartition("@")
    if not at:
        credentials, hosts = "", netloc
    sentinels = tuple(_host_port(part) for part in hosts.split(",") if part.strip())
    if not sentinels:
        raise RedisUrlError("a redis+sentinel:// URL names at least one sentinel host[:port]")
    segments = [unquote(s) for s in path.split("/") if s]
    if not segments or len(segments) > 2:
        raise RedisUrlError("a redis+sentinel:// URL's path is /<service name>[/<db>]")
    try:
        db = int(segments[1]) if len(segments) == 2 else 0
    except ValueError:
        raise RedisUrlError("the database in a redis+sentinel:// URL is a number") from None
    username, _, password = credentials.partition(":")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = set(options) - {"sentinel_password", "sentinel_username", "db"}
    if unknown:
        raise RedisUrlError(f"unknown redis+sentinel:// option(s): {', '.join(sorted(unknown))}")
    if "db" in options:
        try:
            db = int(options["db"])
        except ValueError:
            raise RedisUrlError("the database in a redis+sentinel:// URL is a number") from None
    return SentinelTarget(
        sentinels=sentinels,
        service=segments[0],
        db=db,
        username=unquote(username) or None,
        password=unquote(password) if password else None,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
        ssl=scheme.lower() == "rediss+sentinel",
    )


def _host_port(part: str) -> tuple[str, int]:
    parts = urlsplit(f"//{part.strip()}")
    try:
        port = parts.port or DEFAULT_SENTINEL_PORT
    except ValueError:
        raise RedisUrlError(f"bad sentinel port in {part.strip()!r}") from None
    if not parts.hostname:
        raise RedisUrlError(f"bad sentinel host in {part.strip()!r}")
    return parts.hostname, port


class _FollowingSentinelPool(SentinelConnectionPool):
    """redis-py's Sentinel pool (primary discovery at connect, READONLY → reconnect) that also
    follows a failover while its connections are open.

    redis-py asks the sentinels only when a connection opens, and a forced failover leaves the old
    primary taking writes until the sentinels demote it (seconds later): a pool whose connections
    stay open keeps writing where nothing will keep them. So a watcher asks the sentinels every
    `WATCH_S` while the pool is in use; when the primary moves, idle connections drop at once and
    busy ones as they come back, and the next command opens one to the new primary.
    """

    WATCH_S = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._watch: asyncio.Task[None] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._follow(), name="redis-sentinel-watch")
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def release(self, connection: Any) -> None:
        moved = self.master_address is not None and (connection.host, connection.port) != self.master_address
        if moved and self.is_master:
            await connection.disconnect()
        await super().release(connection)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.WATCH_S)
            with contextlib.suppress(RedisError, OSError):
                await self.get_master_address()  # type: ignore[no-untyped-call]  # a move drops idle connections

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await super().aclose()
        await self.sentinel_manager.aclose()


class _BlockingSentinelPool(_FollowingSentinelPool, BlockingConnectionPool):
    """The following Sentinel pool with the blocking pool's bound (every process's shared pool)."""


def sentinel_manager(target: SentinelTarget, socket_timeout: float | None = None) -> Sentinel:
    """A client of `target`'s sentinels (redis-py's `Sentinel`): `discover_master(target.service)`."""
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": socket_timeout or 1.0, "socket_connect_timeout": 1.0}
    if target.sentinel_password is not None:
        sentinel_kwargs["password"] = target.sentinel_password
    if target.sentinel_username is not None:
        sentinel_kwargs["username"] = target.sentinel_username
    if target.ssl:
        sentinel_kwargs["ssl"] = True
    return Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]


def redis_pool(
    url: str,
    *,
    max_connections: int | None = None,
    timeout: float | None = None,
    **connection_kwargs: Any,
) -> ConnectionPool:
    """A pool for `url`: blocking (at most `max_connections`, waiting up to `timeout` for one) when
    `max_connections` is given, redis-py's default pool otherwise."""
    if not is_sentinel_url(url):
        if max_connections is None:
            return ConnectionPool.from_url(url, **connection_kwargs)
        return BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **connection_kwargs
        )
    target = parse_sentinel_url(url)
    kwargs: dict[str, Any] = {"db": target.db, **connection_kwargs}
    if target.password is not None:
        kwargs["password"] = target.password
    if target.username is not None:
        kwargs["username"] = target.username
    if target.ssl:
        kwargs["ssl"] = True
    manager = sentinel_manager(target, connection_kwargs.get("socket_timeout"))
    if max_connections is None:
        return _FollowingSentinelPool(target.service, manager, **kwargs)
    return _BlockingSentinelPool(  # type: ignore[no-untyped-call]
        target.service, manager, max_connections=max_connections, timeout=timeout, **kwargs
    )


def redis_client(url: str, **options: Any) -> Redis:
    """`Redis.from_url` for every URL this service accepts (Sentinel ones included); closing the
    client closes its pool. `single_connection_client=True` keeps one connection (a blocking reader's)."""
    single = bool(options.pop("single_connection_client", False))
    client = Redis(connection_pool=redis_pool(url, **options), single_connection_client=single)
    client.auto_close_connection_pool = True
    return client


async def primary_address(url: str) -> tuple[str, int]:
    """Where `url`'s primary is now: its own host/port, or the sentinels' answer (RedisConnectionError
    when none knows one)."""
    if not is_sentinel_url(url):
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 6379
    target = parse_sentinel_url(url)
    manager = sentinel_manager(target, None)
    try:
        host, port = await manager.discover_master(target.service)
        return str(host), int(port)
    finally:
        await manager.aclose()


@dataclass
class Replication:
    """After a write that must survive a failover: `WAIT` until `replicas` replicas hold it.

    Redis replicates asynchronously, so a primary that fails over can take its last writes with
    it. An accepted mint and a minter's lease must not be among them: each is followed by
    `confirm()`, which writes a probe key and WAITs on the same connection (the replication stream
    is one ordered log, so every earlier write of every connection is covered). Fewer acks than
    `replicas` within `timeout_ms` raise RedisConnectionError (the API answers 503; a caller's
    retry with its Idempotency-Key finds the same job). `replicas` 0: no wait (one node).
    """

    redis: Redis
    replicas: int
    timeout_ms: int = 1000
    probe_key: str = REPLICATION_PROBE_KEY

    async def confirm(self) -> None:
        if self.replicas <= 0:
            return
        started = time.monotonic()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.probe_key, repr(started), px=60_000)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            _, acks = await pipe.execute()
        if int(acks) < self.replicas:
            raise RedisConnectionError(
                f"Redis confirmed the write on {int(acks)} of {self.replicas} replica(s) within {self.timeout_ms} ms"
            )
