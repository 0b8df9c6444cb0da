"""API load: POST /v1/mints accept latency and rate, GET /v1/mints/{id} rate, against a bare route, one server.

Run from the repository root:
    python -m benchmarks.api_load                      # starts Redis, anvil, API, worker and minter itself
    python -m benchmarks.api_load --url http://127.0.0.1:8000 --api-key pm_...   # a server you run
                                    # (it needs PERSONAMINT_BENCH_ROUTES=1, and a worker + minter)

Every scenario hits the same API process in the same run: `/_bench/bare` (a Litestar route that
does nothing, outside the request middleware) is the framework's ceiling, and the status read
is compared with it. The load generator is a minimal HTTP/1.1 keep-alive client on raw asyncio
streams (httpx would be the bottleneck), one connection per concurrent caller. Accept latency
is measured one request at a time (service time), throughput with many connections.

Status reads are measured on two kinds of record: jobs still queued (small) and jobs that went
all the way to `confirmed` (the largest record: profile, style, render, pin and mint outputs),
minted by the worker and minter before the measurement. Those two are then stopped, so the
accepted jobs only queue and the numbers are the API's alone. Every scenario runs `--repeat`
times, interleaved; the goals are judged on the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_ACCEPT_P99_MS = 5.0
GOAL_STATUS_VS_BARE = 0.5
CONFIRMED_JOBS = 32


@dataclass
class Result:
    name: str
    concurrency: int
    latencies: list[float]
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read exactly one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def build(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_scenario(
    name: str,
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    concurrency: int,
    seconds: float,
    expect: int,
) -> Result:
    connections = [await Connection.open(host, port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def caller(connection: Connection) -> None:
        nonlocal counter, errors
        while time.perf_counter() < deadline:
            counter += 1
            raw = make_request(counter)
            started = time.perf_counter()
            status, _ = await connection.request(raw)
            if status == expect:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return Result(name, concurrency, latencies, elapsed, errors)


def random_address() -> str:
    return "0x" + os.urandom(20).hex()  # all lowercase: valid without a checksum


async def benchmark(
    url: str,
    api_key: str,
    seconds: float,
    concurrency: int,
    *,
    repeat: int = 1,
    stop_workers: Callable[[], None] | None = None,
) -> list[list[Result]]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    hostport = f"{host}:{port}"
    auth = {"Authorization": f"Bearer {api_key}"}
    run_id = os.urandom(4).hex()

    sequence = itertools.count()

    def mint_request(_: int) -> bytes:
        n = next(sequence)  # unique across scenarios: every accept is a new job
        body = json.dumps({"recipient": random_address(), "context": {"level": n % 50}}).encode()
        return build("POST", "/v1/mints", hostport, {**auth, "Idempotency-Key": f"bench-{run_id}-{n}"}, body)

    # Jobs to read back: a few hundred still queued, and some that went all the way (the largest
    # record: profile, style, render, pin and mint outputs), minted by the worker and minter first.
    warm = await Connection.open(host, port)
    confirmed: list[str] = []
    for _ in range(CONFIRMED_JOBS):
        status, body = await warm.request(mint_request(0))
        assert status == 202, body[:300]
        confirmed.append(json.loads(body)["id"])
    deadline = time.monotonic() + 180
    for job_id in confirmed:
        while True:
            status, body = await warm.request(build("GET", f"/v1/mints/{job_id}", hostport, auth))
            state = json.loads(body)["status"]
            if state == "confirmed":
                break
            assert state != "failed", body[:500]
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job_id} not confirmed in time (is a worker and a minter running?)")
            await asyncio.sleep(0.2)
    warm.close()
    if stop_workers is not None:
        stop_workers()  # the measured API runs alone with Redis, as the goal states
    warm = await Connection.open(host, port)  # the server may have closed the idle one meanwhile
    job_ids = []
    for n in range(300):
        status, body = await warm.request(mint_request(n))
        assert status == 202, body[:300]
        job_ids.append(json.loads(body)["id"])
    for _ in range(300):  # warm the bare route too
        await warm.request(build("GET", "/_bench/bare", hostport, {}))
    warm.close()

    bare = build("GET", "/_bench/bare", hostport, {})
    bare_with_context = build("GET", "/_bench/bare-with-context", hostport, {})
    status_reads = [build("GET", f"/v1/mints/{job_id}", hostport, auth) for job_id in job_ids]
    confirmed_reads = [build("GET", f"/v1/mints/{job_id}", hostport, auth) for job_id in confirmed]
    scenarios: list[tuple[str, Callable[[int], bytes], int]] = [
        ("GET /_bench/bare", lambda n: bare, 200),
        ("GET /_bench/bare-with-context", lambda n: bare_with_context, 200),
        ("GET /v1/mints/{id} queued", lambda n: status_reads[n % len(status_reads)], 200),
        ("GET /v1/mints/{id} confirmed", lambda n: confirmed_reads[n % len(confirmed_reads)], 200),
        ("POST /v1/mints", mint_request, 202),
    ]
    rounds = []
    for _ in range(repeat):  # interleaved, so drift on a shared box hits every scenario alike
        results = []
        for scenario_concurrency in (1, concurrency):
            for name, make, expect in scenarios:
                results.append(
                    await run_scenario(
                        name, host, port, make, concurrency=scenario_concurrency, seconds=seconds, expect=expect
                    )
                )
        rounds.append(results)
    return rounds


def report(rounds: list[list[Result]]) -> str:
    """One table per round, then the goals on the medians across rounds."""
    lines = []
    for index, results in enumerate(rounds, 1):
        rows = [(f"round {index}", "conns", "requests", "req/s", "p50 ms", "p99 ms", "errors")]
        for r in results:
            rows.append(
                (
                    r.name,
                    str(r.concurrency),
                    str(len(r.latencies)),
                    f"{r.rate:,.0f}",
                    f"{r.percentile(0.50):.2f}",
                    f"{r.percentile(0.99):.2f}",
                    str(r.errors),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
        table.insert(1, "  ".join("-" * w for w in widths))
        lines += [*table, ""]

    def find(results: list[Result], name: str, conns: int) -> Result:
        return next(r for r in results if r.name == name and r.concurrency == conns)

    first = rounds[0]
    serial, wide = min(r.concurrency for r in first), max(r.concurrency for r in first)

    def median(value: Callable[[list[Result]], float]) -> float:
        return statistics.median(value(results) for results in rounds)

    def ratio(name: str, conns: int, base: str = "GET /_bench/bare") -> float:
        return median(lambda results: find(results, name, conns).rate / find(results, base, conns).rate)

    p50 = median(lambda results: find(results, "POST /v1/mints", serial).percentile(0.5))
    p99 = median(lambda results: find(results, "POST /v1/mints", serial).percentile(0.99))
    accept_rate = median(lambda results: find(results, "POST /v1/mints", wide).rate)
    lines.append(f"medians of {len(rounds)} rounds:")
    lines.append(
        f"accept p50 {p50:.2f} ms, p99 {p99:.2f} ms at {serial} connection, {accept_rate:,.0f} accepts/s at {wide} "
        f"(goal p99 <= {GOAL_ACCEPT_P99_MS} ms: {'met' if p99 <= GOAL_ACCEPT_P99_MS else 'MISSED'})"
    )
    for kind in ("queued", "confirmed"):
        name = f"GET /v1/mints/{{id}} {kind}"
        rate = median(lambda results, name=name: find(results, name, wide).rate)  # type: ignore[misc]
        bare_rate = median(lambda results: find(results, "GET /_bench/bare", wide).rate)
        wide_ratio, serial_ratio = ratio(name, wide), ratio(name, serial)
        lines.append(
            f"status reads ({kind} jobs): {rate:,.0f}/s vs bare {bare_rate:,.0f}/s = {wide_ratio:.0%} with {wide} "
            f"connections, {serial_ratio:.0%} with {serial} "
            f"(goal >= {GOAL_STATUS_VS_BARE:.0%}: {'met' if wide_ratio >= GOAL_STATUS_VS_BARE else 'MISSED'}); "
            f"{ratio(name, wide, 'GET /_bench/bare-with-context'):.0%} of a no-op route behind the request context"
        )
    return "\n".join(lines)


def start_local(tmp: Path) -> tuple[str, str, object, Callable[[], None]]:
    """Redis + anvil + contract + the API, a worker and the minter; returns a callable stopping the last two."""
    from contextlib import ExitStack

    from devstack.anvil import AnvilProcess, free_port
    from devstack.local import RedisServer, ServiceProcesses, deploy_local_contract, service_env

    stack = ExitStack()
    redis_server = stack.enter_context(RedisServer(tmp / "redis"))
    anvil = stack.enter_context(AnvilProcess())
    address, chain_id = asyncio.run(deploy_local_contract(anvil.url))
    env = service_env(
        redis_url=redis_server.url,
        rpc_url=anvil.url,
        contract_address=address,
        chain_id=chain_id,
        data_dir=tmp / "data",
        extra={"PERSONAMINT_BENCH_ROUTES": "1", "PERSONAMINT_WEBHOOK_DELIVERY": "0"},
    )
    services = ServiceProcesses(env, port=free_port(), log_dir=tmp / "logs")
    services.spawn("api", "api")
    services.spawn("worker", "worker")
    services.spawn("minter", "minter")
    stack.callback(services.stop)

    def stop_workers() -> None:
        for name in ("worker", "minter"):
            services.processes[name].terminate()
            services.processes[name].wait(30)

    deadline = time.monotonic() + 60
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(f"{services.base_url}/health", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    from redis.asyncio import Redis

    from api.keys import create_api_key

    async def key() -> str:
        client = Redis.from_url(redis_server.url)
        try:
            return (await create_api_key(client, "bench", rate_per_min=100_000_000, burst=10_000_000))[1]
        finally:
            await client.aclose()

    return services.base_url, asyncio.run(key()), stack, stop_workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_load", description=__doc__)
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--api-key", help="an API key for --url (scopes mint and read, a high rate limit)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per scenario and round")
    parser.add_argument("--concurrency", type=int, default=16, help="connections for the throughput runs")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every scenario; goals use the medians")
    options = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    stack = stop_workers = None
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        if options.url:
            if not options.api_key:
                parser.error("--url needs --api-key")
            url, api_key = options.url, options.api_key
        else:
            url, api_key, stack, stop_workers = start_local(Path(tmp))
        try:
            rounds = asyncio.run(
                benchmark(
                    url,
                    api_key,
                    options.seconds,
                    options.concurrency,
                    repeat=options.repeat,
                    stop_workers=stop_workers,
                )
            )
        finally:
            if stack is not None:
                stack.close()  # type: ignore[attr-defined]
    print(f"API load against {url} (cores: {os.cpu_count()}, {options.seconds:.0f} s per scenario)")
    print(report(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
