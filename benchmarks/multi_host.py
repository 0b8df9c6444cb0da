"""Multi-host layout against one host: what stateless workers cost in jobs/s (#14's figure).

Run from the repository root:
    python -m benchmarks.multi_host             # about 3-4 minutes
    python -m benchmarks.multi_host --quick     # one round of fewer mints

Both layouts run the same processes on this machine (API, two pipeline workers, the minter, the
housekeeper) against one Redis and one anvil with a fresh contract:
- one host: every process shares one data directory and pins into its local store (`serve`'s layout);
- multi-host: every process has its own data directory, as separate machines would, and stage
  outputs travel through a Kubo RPC pinner every process reaches (the Kubo shim of the tests,
  on loopback, in this process), the API's gateway reading through to it.
Each round submits `--mints` mints at once (one tenant, fair share on) and times first accept →
last confirmed. Rounds alternate the layouts; it prints jobs/s per layout (median of rounds) and the
overhead (goal: multi-host within 10 % of one host).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import redis as redis_sync
from eth_account import Account

GOAL_OVERHEAD = 0.10
PROCESSES = ("api", "worker-1", "worker-2", "minter", "housekeeper")
LAYOUTS = ("one host", "multi-host")


@contextlib.contextmanager
def layout(root: Path, name: str) -> Iterator[tuple[str, str]]:
    """The processes in `name`'s layout; yields (API base URL, Redis URL)."""
    from devstack.anvil import AnvilProcess, free_port
    from devstack.local import PIPELINE_WORKER_ENV, RedisServer, ServiceProcesses, deploy_local_contract, service_env
    from tests.support.pinning_servers import FakeKubo
    from tests.support.stack import wait_healthy

    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(RedisServer(root / "redis"))
        anvil = stack.enter_context(AnvilProcess())
        extra = {"PERSONAMINT_TENANT_PIPELINE_IN_FLIGHT": "64"}
        if name == "multi-host":
            kubo = stack.enter_context(FakeKubo())
            extra["PERSONAMINT_PINNERS"] = json.dumps([{"kind": "kubo", "url": kubo.url}])
        address, chain_id = asyncio.run(deploy_local_contract(anvil.url))
        env = service_env(
            redis_url=redis_server.url,
            rpc_url=anvil.url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=root / "data",
            extra=extra,
        )
        services = ServiceProcesses(env, port=free_port(), log_dir=root / "logs")
        stack.callback(services.stop)
        for process in PROCESSES:
            command = process.split("-")[0]
            own: dict[str, str] = dict(PIPELINE_WORKER_ENV) if command == "worker" else {}
            if name == "multi-host":
                own["PERSONAMINT_DATA_DIR"] = str(root / process)
            services.spawn(process, command, own)
        wait_healthy(services.base_url, services.processes["api"], services.log_dir / "api.log")
        yield services.base_url, redis_server.url


def one_round(base_url: str, redis_url: str, mints: int) -> tuple[float, float]:
    """Submit `mints` at once; (jobs/s from first accept to last confirmed, p50 accept → confirmed s).

    Statuses are read from Redis every 50 ms (one pipeline), not polled through the API, so the
    measuring costs the service nothing it would not do anyway."""
    from jobs.keys import job_key
    from tests.support.stack import issue_api_key

    key = asyncio.run(issue_api_key(redis_url, "studio", rate_per_min=10_000_000, burst=1_000_000))
    store = redis_sync.Redis.from_url(redis_url)
    try:
        accepted: dict[str, float] = {}
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            first = time.monotonic()
            for _ in range(mints):
                response = client.post("/v1/mints", json={"recipient": Account.create().address})
                response.raise_for_status()
                accepted[response.json()["id"]] = time.monotonic()
        confirmed: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while len(confirmed) < mints:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(confirmed)} of {mints} mints confirmed")
            waiting = [job_id for job_id in accepted if job_id not in confirmed]
            with store.pipeline(transaction=False) as pipe:
                for job_id in waiting:
                    pipe.hget(job_key(job_id), "status")
                found = pipe.execute()
            now = time.monotonic()
            for job_id, status in zip(waiting, found, strict=True):
                if status == b"failed":
                    raise SystemExit(f"mint {job_id} failed")
                if status == b"confirmed":
                    confirmed[job_id] = now
            time.sleep(0.05)
        latency = statistics.median(confirmed[j] - accepted[j] for j in accepted)
        return mints / (max(confirmed.values()) - first), latency
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multi_host", description=__doc__)
    parser.add_argument("--mints", type=int, default=60, help="mints per round (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per layout, alternating (default 2)")
    parser.add_argument("--quick", action="store_true", help="one round of 30 mints per layout")
    options = parser.parse_args(argv)
    if options.quick:
        options.mints, options.rounds = 30, 1
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in LAYOUTS}
    started = time.monotonic()
    for round_index in range(options.rounds):
        order = LAYOUTS if round_index % 2 == 0 else LAYOUTS[::-1]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="pm-multihost-") as tmp, layout(Path(tmp), name) as urls:
                one_round(*urls, max(4, options.mints // 10))  # warm-up: imports, caches, pools
                results[name].append(one_round(*urls, options.mints))
                rate, p50 = results[name][-1]
                print(f"  round {round_index + 1} {name:10s}: {rate:5.2f} jobs/s, p50 to confirmed {p50:.2f} s")
    rates = {name: statistics.median(r for r, _ in runs) for name, runs in results.items()}
    p50s = {name: statistics.median(p for _, p in runs) for name, runs in results.items()}
    overhead = 1 - rates["multi-host"] / rates["one host"]
    print(f"multi-host layout against one host ({time.monotonic() - started:.0f} s in all)")
    print(f"{options.mints} mints a round, {options.rounds} round(s) each, medians")
    print(f"  one host   : {rates['one host']:.2f} jobs/s, p50 to confirmed {p50s['one host']:.2f} s (baseline)")
    print(f"  multi-host : {rates['multi-host']:.2f} jobs/s, p50 to confirmed {p50s['multi-host']:.2f} s")
    met = "met" if overhead <= GOAL_OVERHEAD else "MISSED"
    print(f"goal multi-host overhead <= {GOAL_OVERHEAD:.0%}: {overhead:+.1%} ({met})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
