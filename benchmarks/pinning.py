"""Seconds from image bytes to `pinned` through each pinning client against its local server.

Run from the repository root: `python -m benchmarks.pinning [--runs N] [--sizes-mb 1,5]`.
Needs `npm ci` (for mock-ipfs-pinning-service). Servers: the Kubo RPC and Pinata
stand-ins from tests/support/pinning_servers.py and the npm pinning-service mock, all on
loopback, so the figures are client + protocol overhead, not network or IPFS
fetch time. Every run pins fresh random bytes and checks the service's CID
against chain.ipfs.cid_for_bytes (for 5 MB: a dag-pb root over 20 raw leaves).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipfs.cid import CHUNK_SIZE, cid_for_bytes
from ipfs.pinning import Pinner, WaitPolicy
from ipfs.pinning.kubo import KuboPinner
from ipfs.pinning.local import LocalStore
from ipfs.pinning.pinata import PinataPinner
from ipfs.pinning.pinning_service import PinningServicePinner
from ipfs.pinning.redundant import RedundantPinner, aclose_pinner
from tests.support.pinning_servers import FakeKubo, FakePinata, MockPinningService

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
POLICY = WaitPolicy(timeout_s=60, request_timeout_s=60, retries=0, poll_s=0.05, max_poll_s=0.2)


def _image(size: int) -> bytes:
    return PNG_MAGIC + os.urandom(size - len(PNG_MAGIC))


async def _time_pins(make: Callable[[], Awaitable[Pinner]], size: int, runs: int) -> tuple[list[float], bool]:
    """Median-ready timings of `runs` pins of fresh bytes, and whether every CID matched ours."""
    pinner = await make()
    timings: list[float] = []
    all_equal = True
    try:
        for run in range(runs):
            data = _image(size)
            # "pinned-" makes the npm mock report `pinned` (it otherwise stays `queued`).
            started = time.perf_counter()
            cid = await pinner.pin(data, content_type="image/png", name=f"pinned-bench-{run}.png")
            timings.append(time.perf_counter() - started)
            all_equal &= cid == cid_for_bytes(data)
    finally:
        await aclose_pinner(pinner)
    return timings, all_equal


async def _bench(runs: int, sizes_mb: list[float]) -> None:
    with (
        tempfile.TemporaryDirectory() as scratch,
        FakeKubo() as kubo,
        FakeKubo() as provider,
        FakePinata(token="jwt") as pinata,
        MockPinningService("token") as service,
    ):
        local_root = Path(scratch)

        async def local() -> Pinner:
            return LocalStore(local_root / "local")

        async def kubo_client() -> Pinner:
            return KuboPinner(kubo.url, policy=POLICY)

        async def pinning_service() -> Pinner:
            return PinningServicePinner(
                service.url, token="token", policy=POLICY, provider=KuboPinner(provider.url, policy=POLICY)
            )

        async def pinata_legacy() -> Pinner:
            return PinataPinner("jwt", api="legacy", api_url=pinata.url, policy=POLICY)

        async def pinata_v3() -> Pinner:
            return PinataPinner("jwt", api="v3", uploads_url=pinata.url, policy=POLICY)

        async def redundant_all() -> Pinner:
            return RedundantPinner(
                [
                    ("kubo", await kubo_client()),
                    ("pinning-service", await pinning_service()),
                    ("pinata", await pinata_legacy()),
                ],
                policy="all",
                required=[("local", LocalStore(local_root / "redundant"))],
            )

        clients: list[tuple[str, Callable[[], Awaitable[Pinner]]]] = [
            ("local store (baseline)", local),
            ("kubo rpc: add + pin/add", kubo_client),
            ("pinning service API", pinning_service),
            ("pinata pinFileToIPFS", pinata_legacy),
            ("pinata v3 files", pinata_v3),
            ("redundant, policy=all", redundant_all),
        ]
        print(f"median/min of {runs} runs, fresh random bytes each run; CID = ours for every run?")
        header = (
            f"{'client':<26} | {'size':>6} | {'leaves':>6} | {'median s':>8} | {'min s':>7} | {'MB/s':>6} | CID equal"
        )
        print(header)
        print("-" * len(header))
        for size_mb in sizes_mb:
            size = int(size_mb * 1024 * 1024)
            leaves = -(-size // CHUNK_SIZE)
            for label, make in clients:
                timings, equal = await _time_pins(make, size, runs)
                median = statistics.median(timings)
                print(
                    f"{label:<26} | {size_mb:>4g}MB | {leaves:>6} | {median:>8.3f} | {min(timings):>7.3f} "
                    f"| {size_mb / median:>6.0f} | {'yes' if equal else 'NO'}"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per client and size (median)")
    parser.add_argument("--sizes-mb", default="1,5", help="comma-separated image sizes in MiB")
    args = parser.parse_args(argv)
    asyncio.run(_bench(args.runs, [float(s) for s in args.sizes_mb.split(",")]))


if __name__ == "__main__":
    main()
