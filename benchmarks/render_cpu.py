"""Benchmark the CPU renderer: pixel synthesis and PNG encoding per motif at 1024x1024."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from personalization.style import StyleParams, load_style_dna
from render.procedural import DEFAULT_PNG_COMPRESS_LEVEL, MEDIA, MOTIFS, encode_png, synthesize

TARGET_MS = 150.0
PILLOW_DEFAULT_LEVEL = 6


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, object, float]:
    """Median wall-clock ms, the last result, and median CPU ms of this process.

    CPU time is reported beside wall time because on a shared machine other
    processes stretch the wall clock without the renderer doing more work.
    """
    result = fn()  # warm-up: first-touch page faults, lazily built tables
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append((time.perf_counter() - started) * 1000.0)
        cpu.append((time.process_time() - started_cpu) * 1000.0)
    return statistics.median(wall), result, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case, after one warm-up")
    args = parser.parse_args()

    dna = load_style_dna(Path(__file__).resolve().parents[1] / "collections" / "default.toml")
    palettes = list(dna.palettes)
    print(f"CPU renderer, {args.size}x{args.size}, median of {args.runs} runs after a warm-up")
    load = ", load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    # Wall-clock medians: on a shared machine, other work inflates them; the load shows how much.
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}{load}")
    print("worst case per motif: complexity 10, energy 100, symmetry 95, grain 100, every medium")
    print()
    header = (
        f"{'motif':<14}{'synth ms':>9}{'cpu ms':>8}{'worst medium':>14}{'all media':>12}"
        f"{'png L1 ms':>11}{'L1 KiB':>8}{'png L6 ms':>11}{'L6 KiB':>8}  target"
    )
    print(header)
    print("-" * len(header))
    for index, motif in enumerate(MOTIFS):
        per_medium: dict[str, float] = {}
        per_medium_cpu: dict[str, float] = {}
        frames: dict[str, np.ndarray] = {}
        for medium in MEDIA:
            palette = palettes[(index + MEDIA.index(medium)) % len(palettes)]
            params = StyleParams(
                palette=palette,
                medium=medium,
                motif=motif,
                mood=dna.moods[(index + 2 * MEDIA.index(medium)) % len(dna.moods)],
                complexity=10,
                energy=100,
                symmetry=95,
                grain=100,
                hue_shift=15,
            )
            colours = dna.palettes[palette]
            ms, frame, cpu_ms = median_ms(
                lambda p=params, c=colours: synthesize(p, c, 1, args.size, args.size), args.runs
            )
            per_medium[medium] = ms
            per_medium_cpu[medium] = cpu_ms
            frames[medium] = frame  # type: ignore[assignment]
        worst = max(per_medium, key=per_medium.__getitem__)
        frame = frames[worst]
        fast_ms, fast_png, _ = median_ms(lambda f=frame: encode_png(f, DEFAULT_PNG_COMPRESS_LEVEL), args.runs)
        slow_ms, slow_png, _ = median_ms(lambda f=frame: encode_png(f, PILLOW_DEFAULT_LEVEL), args.runs)
        spread = f"{min(per_medium.values()):.0f}-{max(per_medium.values()):.0f}"
        verdict = "met" if per_medium[worst] <= TARGET_MS else "MISSED"
        print(
            f"{motif:<14}{per_medium[worst]:>9.1f}{per_medium_cpu[worst]:>8.1f}{worst:>14}{spread:>12}"
            f"{fast_ms:>11.1f}{len(fast_png) / 1024:>8.0f}"  # type: ignore[arg-type]
            f"{slow_ms:>11.1f}{len(slow_png) / 1024:>8.0f}  {verdict}"  # type: ignore[arg-type]
        )
    print()
    print(f"target: synthesis <= {TARGET_MS:.0f} ms median. PNG level {DEFAULT_PNG_COMPRESS_LEVEL} is the renderer's")
    print(f"setting, level {PILLOW_DEFAULT_LEVEL} Pillow's default, both optimize=False; encoding is timed apart.")


if __name__ == "__main__":
    main()
