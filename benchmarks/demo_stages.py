"""Per-stage median seconds over the demo's six mints, and the demo's own wall time."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from config.settings import Settings
from devstack.demo import demo_session

STAGES = ("profile", "style", "render", "pin", "mint")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        outcome = demo_session(Settings(data_dir=Path(tmp) / "var"), out_dir=Path(tmp) / "gallery")  # type: ignore[call-arg]
        wall = time.perf_counter() - started
    if not outcome.ok:
        raise SystemExit("demo failed")
    print(f"\n{'stage':<10}{'median s':>10}{'min s':>10}{'max s':>10}")
    for stage in STAGES:
        values = [m.record["timings"][stage] for m in outcome.mints]
        print(f"{stage:<10}{statistics.median(values):>10.3f}{min(values):>10.3f}{max(values):>10.3f}")
    accept_to_confirmed = [m.seconds for m in outcome.mints]
    print(
        f"{'end-to-end':<10}{statistics.median(accept_to_confirmed):>10.3f}"
        f"{min(accept_to_confirmed):>10.3f}{max(accept_to_confirmed):>10.3f}"
    )
    print(f"\ndemo_session wall time: {wall:.1f} s (start stack, seed, start services, six mints, gallery, stop)")


if __name__ == "__main__":
    main()
