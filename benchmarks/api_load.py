"""API load: POST /v1/mints accept latency and rate, GET /v1/mints/{id} rate, against a bare route, one server.

Run from the repository root:
    python -m benchmarks.api_load                      # starts Redis, anvil and one API process itself
    python -m benchmarks.api_load --url http://127.0.0.1:8000 --api-key pm_...   # a server you run
                                                        # (it needs PERSONAMINT_BENCH_ROUTES=1)

Every scenario hits the same API process in the same run: `/_bench/bare` (a Litestar route that
does nothing, outside the request middleware) is the framework's ceiling, and the status read
is compared with it. The load generator is a minimal HTTP/1.1 keep-alive client on raw asyncio
streams (httpx would be the bottleneck), one connection per concurrent caller. Accept latency
is measured one request at a time (service time), throughput with many connections. No worker
runs during the benchmark, so the accepted jobs only queue: the numbers are the API's alone.
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


async def benchmark(url: str, api_key: str, seconds: float, concurrency: int) -> list[Result]:
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

    # Jobs to read back: accept a few hundred first.
    warm = await Connection.open(host, port)
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
    results = []
    for scenario_concurrency in (1, concurrency):
        results.append(
            await run_scenario(
                "GET /_bench/bare", host, port, lambda n: bare, concurrency=scenario_concurrency,
                seconds=seconds, expect=200,
            )
        )  # fmt: skip
        results.append(
            await run_scenario(
                "GET /_bench/bare-with-context", host, port, lambda n: bare_with_context,
                concurrency=scenario_concurrency, seconds=seconds, expect=200,
            )
        )  # fmt: skip
        results.append(
            await run_scenario(
                "GET /v1/mints/{id}", host, port, lambda n: status_reads[n % len(status_reads)],
                concurrency=scenario_concurrency, seconds=seconds, expect=200,
            )
        )  # fmt: skip
        results.append(
            await run_scenario(
                "POST /v1/mints", host, port, mint_request, concurrency=scenario_concurrency,
                seconds=seconds, expect=202,
            )
        )  # fmt: skip
    return results


def report(results: list[Result]) -> str:
    rows = [("scenario", "conns", "requests", "req/s", "p50 ms", "p99 ms", "errors")]
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
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))

    def find(name: str, conns: int) -> Result:
        return next(r for r in results if r.name == name and r.concurrency == conns)

    serial, wide = min(r.concurrency for r in results), max(r.concurrency for r in results)
    accept = find("POST /v1/mints", serial)
    ratio = find("GET /v1/mints/{id}", wide).rate / find("GET /_bench/bare", wide).rate
    ratio_serial = find("GET /v1/mints/{id}", serial).rate / find("GET /_bench/bare", serial).rate
    lines.append("")
    lines.append(
        f"accept p50 {accept.percentile(0.5):.2f} ms, p99 {accept.percentile(0.99):.2f} ms at {serial} connection "
        f"(goal p99 <= {GOAL_ACCEPT_P99_MS} ms: {'met' if accept.percentile(0.99) <= GOAL_ACCEPT_P99_MS else 'MISSED'})"
    )
    lines.append(
        f"status reads at {ratio:.0%} of the bare route's rate with {wide} connections, {ratio_serial:.0%} with "
        f"{serial} (goal >= {GOAL_STATUS_VS_BARE:.0%}: {'met' if ratio >= GOAL_STATUS_VS_BARE else 'MISSED'})"
    )
    with_context = find("GET /v1/mints/{id}", wide).rate / find("GET /_bench/bare-with-context", wide).rate
    lines.append(
        f"status reads at {with_context:.0%} of a no-op route behind the same request context (request id, metrics)"
    )
    return "\n".join(lines)


def start_local(tmp: Path) -> tuple[str, str, object]:
    """Redis + anvil + contract + one API process (no worker, no minter)."""
    from contextlib import ExitStack

    from api.local import RedisServer, ServiceProcesses, deploy_local_contract, service_env
    from chain.anvil import AnvilProcess, free_port

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
    stack.callback(services.stop)
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

    from api.auth import create_api_key

    async def key() -> str:
        client = Redis.from_url(redis_server.url)
        try:
            return (await create_api_key(client, "bench", rate_per_min=100_000_000, burst=10_000_000))[1]
        finally:
            await client.aclose()

    return services.base_url, asyncio.run(key()), stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_load", description=__doc__)
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--api-key", help="an API key for --url (scopes mint and read, a high rate limit)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="connections for the throughput runs")
    options = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    stack = None
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        if options.url:
            if not options.api_key:
                parser.error("--url needs --api-key")
            url, api_key = options.url, options.api_key
        else:
            url, api_key, stack = start_local(Path(tmp))
        try:
            results = asyncio.run(benchmark(url, api_key, options.seconds, options.concurrency))
        finally:
            if stack is not None:
                stack.close()  # type: ignore[attr-defined]
    print(f"API load against {url} (cores: {os.cpu_count()}, {options.seconds:.0f} s per scenario)")
    print(report(results))
    print(f"median accept latency across runs: {statistics.median(r.percentile(0.5) for r in results):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
