"""api.redismux against a real redis-server: replies in order under load, errors, scripts, loss, auth."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.redismux import RedisMux
from devstack.anvil import free_port
from devstack.local import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as redis_server:
        yield redis_server


async def test_concurrent_callers_each_get_their_own_reply(server: RedisServer) -> None:
    mux = RedisMux(server.url)
    try:
        # 2,000 commands in flight at once on one connection: every reply lands on its caller.
        replies = await asyncio.gather(*(mux.execute("ECHO", f"caller-{i}") for i in range(2000)))
        assert replies == [f"caller-{i}".encode() for i in range(2000)]
        counts = await asyncio.gather(*(mux.execute("INCR", "counter") for _ in range(500)))
        assert sorted(counts) == list(range(1, 501))
        assert await mux.execute("GET", "counter") == b"500"
    finally:
        await mux.aclose()


async def test_an_error_reply_fails_only_its_command(server: RedisServer) -> None:
    mux = RedisMux(server.url)
    try:
        await mux.execute("SET", "text", "not a number")
        results = await asyncio.gather(
            mux.execute("ECHO", "before"),
            mux.execute("INCR", "text"),
            mux.execute("ECHO", "after"),
            return_exceptions=True,
        )
        assert results[0] == b"before"
        assert isinstance(results[1], ResponseError)
        assert "not an integer" in str(results[1])
        assert results[2] == b"after"
    finally:
        await mux.aclose()


async def test_scripts_run_by_sha_and_load_when_missing(server: RedisServer) -> None:
    mux = RedisMux(server.url)
    script = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"
    try:
        assert await mux.eval_script(script, ["n"], ["x"]) == [b"n", b"x", 1]
        assert await mux.eval_script(script, ["n"], ["y"]) == [b"n", b"y", 2]
        await mux.execute("SCRIPT", "FLUSH")  # a restarted Redis has no scripts
        with pytest.raises(NoScriptError):
            await mux.execute("EVALSHA", "0" * 40, 0)
        assert await mux.eval_script(script, ["n"], ["z"]) == [b"n", b"z", 3]
    finally:
        await mux.aclose()


async def test_lost_server_fails_fast_then_reconnects(tmp_path: Path) -> None:
    port = free_port()
    first = RedisServer(tmp_path / "a", port=port).start()
    mux = RedisMux(first.url, timeout_s=2)
    try:
        assert await mux.execute("SET", "k", "v") == b"OK"
        first.stop()
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await mux.execute("GET", "k")
        assert time.monotonic() - started < 1.5  # a refused connection, not a timeout
        second = RedisServer(tmp_path / "b", port=port).start()  # a fresh server, same address
        try:
            assert await mux.execute("PING") == b"PONG"
            assert await mux.execute("GET", "k") is None
        finally:
            second.stop()
    finally:
        await mux.aclose()
        first.stop()


async def test_a_reply_that_never_comes_times_out_and_the_next_command_works(server: RedisServer) -> None:
    mux = RedisMux(server.url, timeout_s=0.2)
    try:
        with pytest.raises(RedisTimeoutError):
            await mux.execute("BLPOP", "nothing-here", "0.6")  # Redis answers (nil) after 0.6 s
        # The late reply must not reach a later caller: the connection was dropped, this one is new.
        await asyncio.sleep(0.6)
        assert await mux.execute("ECHO", "fresh") == b"fresh"
    finally:
        await mux.aclose()


async def test_password_and_database_from_the_url(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        sync = SyncRedis(port=port, password="s3cret", db=3)
        deadline = time.monotonic() + 10
        while True:
            try:
                sync.ping()
                break
            except RedisConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sync.set("where", "db3")
        mux = RedisMux(f"redis://:s3cret@127.0.0.1:{port}/3")
        try:
            assert await mux.execute("GET", "where") == b"db3"
        finally:
            await mux.aclose()
        wrong = RedisMux(f"redis://:wrong@127.0.0.1:{port}/0")
        try:
            with pytest.raises(AuthenticationError):  # as redis-py raises it
                await wrong.execute("PING")
        finally:
            await wrong.aclose()
        sync.close()
    finally:
        process.terminate()
        process.wait(10)
