"""Two chains at once against one chain: chain B adds throughput, not latency to chain A (#14's figure).

Run from the repository root:
    python -m benchmarks.two_chains            # about 3 minutes
    python -m benchmarks.two_chains --quick    # one round of fewer mints

One deployment, as `serve` runs it with collections on two chains: Redis, the API, a pipeline
worker, the previewer, the housekeeper, anvil A (31337, collection `default`) with its minter and
anvil B (31338, collection `second`) with its own, both with 1 s blocks
(`--block-time`; 0: automine). Each round has two phases, in alternating order:
- A alone: mints for `default` at a steady pace (one every --every seconds);
- A with B busy: the same pace for `default` while as many mints for `second` go in beside them.
It prints, medians of rounds: p50 accept → confirmed of chain A's mints in each phase (goal: with
B busy within 10 % of A alone), the mint stage alone (minting → confirmed: where a shared minter
would show), and the jobs/s both chains confirmed in each phase (B adds it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import redis as redis_sync
from eth_account import Account

GOAL = 0.10
CHAIN_B = 31338
ROOT = Path(__file__).resolve().parents[1]
PHASES = ("A alone", "A with B busy")


@contextlib.contextmanager
def deployment(root: Path, block_time: float | None) -> Iterator[tuple[str, str]]:
    """The two-chain deployment; yields (API base URL, Redis URL)."""
    from devstack.anvil import AnvilProcess
    from devstack.local import deployed_services

    collections = root / "collections"
    collections.mkdir()
    text = (ROOT / "collections" / "default.toml").read_text()
    shutil.copy(ROOT / "collections" / "default.toml", collections / "default.toml")
    second = re.sub(r"(?m)^chain_id = 31337$", f"chain_id = {CHAIN_B}", text.replace('id = "default"', 'id = "second"'))
    (collections / "second.toml").write_text(second)
    extra = {"PERSONAMINT_COLLECTIONS_DIR": str(collections), "PERSONAMINT_TENANT_PIPELINE_IN_FLIGHT": "64"}
    with (
        AnvilProcess(chain_id=CHAIN_B, block_time=block_time) as anvil_b,
        deployed_services(root, extra=extra, chains={CHAIN_B: anvil_b}, block_time=block_time) as deployed,
    ):
        yield deployed.services.base_url, deployed.redis.url


class Submitter(threading.Thread):
    """Submits `count` mints for `collection`, one every `every` seconds; records accept times."""

    def __init__(self, base_url: str, key: str, collection: str, count: int, every: float) -> None:
        super().__init__(daemon=True)
        self.base_url, self.key, self.collection, self.count, self.every = base_url, key, collection, count, every
        self.accepted: dict[str, float] = {}

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as c:
            start = time.monotonic()
            for index in range(self.count):
                time.sleep(max(0.0, start + index * self.every - time.monotonic()))
                body = {"recipient": Account.create().address, "collection": self.collection}
                response = c.post("/v1/mints", json=body)
                response.raise_for_status()
                self.accepted[response.json()["id"]] = time.monotonic()


def watch(store: redis_sync.Redis, accepted: dict[str, float], minting: dict[str, float], confirmed: dict[str, float]):
    """One pass over the open jobs' statuses (a pipeline): first seen minting, first seen confirmed."""
    from jobs.keys import job_key

    waiting = [job_id for job_id in list(accepted) if job_id not in confirmed]
    with store.pipeline(transaction=False) as pipe:
        for job_id in waiting:
            pipe.hget(job_key(job_id), "status")
        found = pipe.execute()
    now = time.monotonic()
    for job_id, status in zip(waiting, found, strict=True):
        if status == b"failed":
            raise SystemExit(f"mint {job_id} failed")
        if status in (b"minting", b"confirmed"):
            minting.setdefault(job_id, now)
        if status == b"confirmed":
            confirmed[job_id] = now


def phase(base_url: str, redis_url: str, key: str, *, with_b: bool, mints: int, every: float) -> dict[str, float]:
    store = redis_sync.Redis.from_url(redis_url)
    try:
        submitters = [Submitter(base_url, key, "default", mints, every)]
        if with_b:
            submitters.append(Submitter(base_url, key, "second", mints, every))
        started = time.monotonic()
        for submitter in submitters:
            submitter.start()
        minting: dict[str, float] = {}
        confirmed: dict[str, float] = {}
        merged: dict[str, float] = {}
        deadline = started + 600
        while any(s.is_alive() for s in submitters) or len(confirmed) < sum(len(s.accepted) for s in submitters):
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(confirmed)} mints confirmed")
            for submitter in submitters:
                merged.update(submitter.accepted)
            watch(store, merged, minting, confirmed)
            time.sleep(0.05)
        a = submitters[0].accepted
        return {
            "p50": statistics.median(confirmed[j] - a[j] for j in a),
            "mint_stage": statistics.median(confirmed[j] - minting[j] for j in a),
            "jobs_s": len(confirmed) / (max(confirmed.values()) - started),
        }
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.two_chains", description=__doc__)
    parser.add_argument("--mints", type=int, default=30, help="chain A mints per phase (default 30)")
    parser.add_argument("--every", type=float, default=0.8, help="seconds between one chain's mints (default 0.8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, phases alternating (default 3)")
    parser.add_argument(
        "--block-time", type=float, default=1.0, help="seconds per block on both chains (default 1; 0: automine)"
    )
    parser.add_argument("--quick", action="store_true", help="one round of 12 mints per phase")
    options = parser.parse_args(argv)
    if options.quick:
        options.mints, options.rounds = 12, 1
    from tests.support.stack import issue_api_key

    results: dict[str, list[dict[str, float]]] = {name: [] for name in PHASES}
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="pm-twochains-") as tmp,
        deployment(Path(tmp), options.block_time or None) as (base_url, redis_url),
    ):
        key = asyncio.run(issue_api_key(redis_url, "studio", rate_per_min=10_000_000, burst=1_000_000))
        phase(base_url, redis_url, key, with_b=True, mints=4, every=0.2)  # warm-up: both minters, caches
        for round_index in range(options.rounds):
            order = PHASES if round_index % 2 == 0 else PHASES[::-1]
            for name in order:
                found = phase(
                    base_url, redis_url, key, with_b=name != "A alone", mints=options.mints, every=options.every
                )
                results[name].append(found)
                print(
                    f"  round {round_index + 1} {name:13s}: A p50 to confirmed {found['p50']:.2f} s "
                    f"(mint stage {found['mint_stage']:.2f} s), {found['jobs_s']:.2f} jobs/s confirmed"
                )
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
    alone, busy = medians["A alone"], medians["A with B busy"]
    print(f"two chains at once against one chain ({time.monotonic() - started:.0f} s in all)")
    blocks = f"{options.block_time:g} s blocks" if options.block_time else "automine"
    print(
        f"{options.mints} chain-A mints a phase, one every {options.every} s per chain, {blocks}, "
        f"{options.rounds} round(s)"
    )
    for name, found in medians.items():
        tag = " (baseline)" if name == "A alone" else ""
        print(
            f"  {name:13s}: A p50 to confirmed {found['p50']:.2f} s, mint stage {found['mint_stage']:.2f} s, "
            f"{found['jobs_s']:.2f} jobs/s confirmed{tag}"
        )
    ratio = busy["p50"] / alone["p50"]
    met = "met" if ratio <= 1 + GOAL else "MISSED"
    print(f"goal A's p50 with B busy within {GOAL:.0%} of A alone: {ratio - 1:+.1%} ({met})")
    print(f"chain B adds {busy['jobs_s'] / alone['jobs_s']:.2f}x the confirmed jobs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
