"""Throughput of chain.ipfs.cid_for_bytes against plain sha256 over the same bytes.

Run from the repository root: `python -m benchmarks.cid [--runs N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (`python benchmarks/cid.py`): make the repository importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipfs.cid import cid_for_bytes

SIZES_MB = (1, 5, 45)


def _median_seconds(task: Callable[[bytes], object], data: bytes, runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        task(data)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    args = parser.parse_args(argv)

    header = (
        f"{'input':>6} | {'sha256 MB/s':>11} | {'CIDv1 MB/s':>10} | {'v1/sha256':>9} "
        f"| {'CIDv0 MB/s':>10} | {'v0/sha256':>9}"
    )
    print(f"median of {args.runs} runs; ratio = CID time / sha256 time (1.00 = the floor)")
    print(header)
    print("-" * len(header))
    for size_mb in SIZES_MB:
        # Random bytes so no layer can profit from repeated chunks.
        data = os.urandom(size_mb * 1_000_000)
        floor = _median_seconds(lambda b: hashlib.sha256(b).digest(), data, args.runs)
        v1 = _median_seconds(lambda b: cid_for_bytes(b, version=1), data, args.runs)
        v0 = _median_seconds(lambda b: cid_for_bytes(b, version=0), data, args.runs)
        print(
            f"{size_mb:>4}MB | {size_mb / floor:>11.0f} | {size_mb / v1:>10.0f} "
            f"| {v1 / floor:>9.2f} | {size_mb / v0:>10.0f} | {v0 / floor:>9.2f}"
        )


if __name__ == "__main__":
    main()
