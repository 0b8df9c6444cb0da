"""SSE streams are bounded: per credential (16 by default), in Redis connections (one reader per API
process, whatever the number of streams), kept alive past any socket timeout, and always closed
when the job ends, even when resumed past its last event."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis as redis_sync
from eth_account import Account
from redis.asyncio import Redis

from api.keys import create_api_key
from api.streams import READ_BLOCK_MS, READER_SOCKET_TIMEOUT_S, StreamHub
from jobs.keys import stream_leases_key
from jobs.model import JobError
from jobs.store import JobStore
from tests.support.stack import Stack, issue_api_key

# A database of the stack's redis-server that no worker or minter serves: mints there stay queued,
# so their streams stay open as long as a test needs.
_DB = 9
_MAX_U64 = 2**64 - 1


@dataclass
class QuietApi:
    base_url: str
    redis_url: str
    log_path: Any

    def key(self, tenant: str) -> str:
        return asyncio.run(issue_api_key(self.redis_url, tenant))

    def key_with_id(self, tenant: str) -> tuple[str, str]:
        async def create() -> tuple[str, str]:
            redis = Redis.from_url(self.redis_url)
            try:
                return await create_api_key(redis, tenant)
            finally:
                await redis.aclose()

        return asyncio.run(create())

    def client(self, api_key: str, **options: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30, **options
        )

    def mint(self, client: httpx.Client) -> str:
        response = client.post("/v1/mints", json={"recipient": Account.create().address})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id


@pytest.fixture(scope="module")
def quiet(stack: Stack) -> QuietApi:
    redis_url = stack.redis.url.rsplit("/", 1)[0] + f"/{_DB}"
    name = "api-sse-limits"
    base_url = stack.spawn_api(name, {"PERSONAMINT_REDIS_URL": redis_url})
    return QuietApi(base_url, redis_url, stack.services.log_dir / f"{name}.log")


def _connections(stack: Stack) -> dict[str, int]:
    """Connections of the quiet API's process by client name: those on its database (the stack's use 0)."""
    admin = redis_sync.Redis.from_url(stack.redis.url)
    try:
        clients: list[dict[str, Any]] = admin.client_list()  # type: ignore[assignment]
        names = [client["name"] for client in clients if int(client["db"]) == _DB]
        return {name: names.count(name) for name in set(names)}
    finally:
        admin.close()


@contextlib.contextmanager
def _open_streams(client: httpx.Client, job_ids: list[str]) -> Iterator[list[httpx.Response]]:
    with contextlib.ExitStack() as streams:
        responses = [streams.enter_context(client.stream("GET", f"/v1/mints/{job}/events")) for job in job_ids]
        yield responses


def _end(redis_url: str, job_id: str) -> None:
    async def end() -> None:
        redis = Redis.from_url(redis_url)
        try:
            await JobStore(redis).fail(job_id, JobError("render_failed", "ended by the test"))
        finally:
            await redis.aclose()

    asyncio.run(end())


def test_a_credential_holds_at_most_16_streams_and_others_are_not_affected(quiet: QuietApi) -> None:
    with quiet.client(quiet.key("sse-greedy")) as greedy, quiet.client(quiet.key("sse-bystander")) as other:
        job = quiet.mint(greedy)
        with _open_streams(greedy, [job] * 16) as opened:
            assert all(response.status_code == 200 for response in opened)
            refused = greedy.get(f"/v1/mints/{job}/events")
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "too_many_streams"
            assert int(refused.headers["retry-after"]) > 0
            # Another tenant mints and streams meanwhile.
            other_job = quiet.mint(other)
            with other.stream("GET", f"/v1/mints/{other_job}/events") as response:
                assert response.status_code == 200
        # Closed streams give their places back.
        deadline = time.monotonic() + 10
        while True:
            with greedy.stream("GET", f"/v1/mints/{job}/events") as response:
                if response.status_code == 200:
                    break
            assert time.monotonic() < deadline, "closed streams kept their leases"
            time.sleep(0.1)


def test_a_reconnect_storm_is_rate_limited_per_credential(quiet: QuietApi) -> None:
    # A stream on an ended job closes at once; a client that reopens it again and again spends its
    # credential's stream opens (burst 32, then 2 a second), not the API's CPU. Others stream on.
    with quiet.client(quiet.key("sse-storm")) as storm, quiet.client(quiet.key("sse-calm")) as calm:
        job = quiet.mint(storm)
        _end(quiet.redis_url, job)
        answers = []
        for _ in range(40):
            with storm.stream("GET", f"/v1/mints/{job}/events") as response:
                response.read()
                answers.append(response)
        codes = [response.status_code for response in answers]
        assert codes[:32] == [200] * 32, codes
        refused = [response for response in answers if response.status_code == 429]
        assert len(refused) >= 6, codes
        assert refused[0].json()["code"] == "stream_rate_limited"
        assert float(refused[0].json()["retry_after_s"]) > 0
        assert int(refused[0].headers["retry-after"]) >= 1
        other_job = quiet.mint(calm)
        with calm.stream("GET", f"/v1/mints/{other_job}/events") as response:
            assert response.status_code == 200


def test_leases_of_a_crashed_process_lapse(quiet: QuietApi) -> None:
    """A process that died holding 16 streams of a key (their leases unrefreshed, so past) blocks no one."""
    key_id, api_key = quiet.key_with_id("sse-crashed")
    admin = redis_sync.Redis.from_url(quiet.redis_url)
    try:
        admin.zadd(stream_leases_key("sse-crashed", key_id), {f"dead-{i}": 1 for i in range(16)})
    finally:
        admin.close()
    with quiet.client(api_key) as client:
        job = quiet.mint(client)
        with client.stream("GET", f"/v1/mints/{job}/events") as response:
            assert response.status_code == 200


def test_a_hundred_streams_share_a_fixed_number_of_redis_connections(stack: Stack, quiet: QuietApi) -> None:
    keys = [quiet.key(f"sse-many-{i}") for i in range(7)]
    clients = [quiet.client(key, limits=httpx.Limits(max_connections=32)) for key in keys]
    try:
        jobs = [quiet.mint(client) for client in clients]
        with contextlib.ExitStack() as streams:
            opened = [
                streams.enter_context(client.stream("GET", f"/v1/mints/{job}/events"))
                for client, job in zip(clients, jobs, strict=True)
                for _ in range(15)
            ]
            assert len(opened) == 105
            assert [response.status_code for response in opened] == [200] * 105
            lines = opened[-1].iter_lines()
            assert next(line for line in lines if line.startswith("data:"))  # the replayed `queued` event
            # One reader for every stream; the shared pool only lends connections for single commands.
            during = _connections(stack)
            assert during.get("personamint-api-sse") == 1, during
            assert sum(during.values()) <= 12, during
            # Live events still reach their stream, and the end closes it.
            _end(quiet.redis_url, jobs[-1])
            rest = list(lines)
            assert any('"status":"failed"' in line for line in rest), rest
    finally:
        for client in clients:
            client.close()


def test_an_idle_stream_stays_open_with_keepalives_past_5_s(quiet: QuietApi) -> None:
    """At the default settings (redis-py's 5 s socket timeout included), an idle stream lives on."""
    assert READER_SOCKET_TIMEOUT_S > READ_BLOCK_MS / 1000  # an idle XREAD returns before its socket times out
    with quiet.client(quiet.key("sse-idle")) as client:
        job = quiet.mint(client)
        log_before = quiet.log_path.read_text()
        keepalives: list[float] = []
        started = time.monotonic()
        with client.stream("GET", f"/v1/mints/{job}/events", timeout=20) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith(": keep-alive") or line == ":keep-alive":
                    keepalives.append(time.monotonic() - started)
                if time.monotonic() - started > 8.5:
                    break
        assert keepalives, "no keep-alive"
        assert max(keepalives) > 5, keepalives
        new_log = quiet.log_path.read_text()[len(log_before) :]
        assert "Traceback" not in new_log
        assert "SSE stream reader" not in new_log  # the reader's XREAD never timed out


def test_the_hub_reader_socket_outlives_its_block() -> None:
    hub = StreamHub.from_url("redis://127.0.0.1:1/0", Redis.from_url("redis://127.0.0.1:1/0"))
    kwargs = hub._reader.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] > READ_BLOCK_MS / 1000


@pytest.mark.parametrize(
    "last_event_id",
    [
        "99999999999999999999999-0",
        "99999999999999999999-0",
        f"{_MAX_U64 + 1}-0",
        f"1-{_MAX_U64 + 1}",
        "1-0\n",
        "١-٠".encode(),
        b"\xb2-0",
    ],
)
def test_a_last_event_id_outside_redis_ids_is_a_400(quiet: QuietApi, last_event_id: str | bytes) -> None:
    with quiet.client(quiet.key("sse-ids")) as client:
        job = quiet.mint(client)
        try:
            response = client.get(f"/v1/mints/{job}/events", headers={"Last-Event-ID": last_event_id})
        except httpx.LocalProtocolError:
            return  # not sendable as a header at all
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_last_event_id"


def test_a_stream_resumed_past_its_last_event_closes_when_the_job_ends(quiet: QuietApi) -> None:
    with quiet.client(quiet.key("sse-resume")) as client:
        job = quiet.mint(client)
        headers = {"Last-Event-ID": f"{_MAX_U64}-{_MAX_U64}"}
        with client.stream("GET", f"/v1/mints/{job}/events", headers=headers, timeout=20) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            time.sleep(0.5)
            _end(quiet.redis_url, job)
            data = [line for line in lines if line.startswith("data:")]  # ends: the server closes the stream
        assert len(data) == 1, data
        assert '"status":"failed"' in data[0], data
