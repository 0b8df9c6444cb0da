"""Full garbage-collection pause in the API process, with and without the start-up heap frozen.

Run from the repository root:
    python -m benchmarks.gc_pause

The API freezes what start-up loaded (`gc.freeze()` in its lifespan). CPython's full (gen-2)
collection walks every tracked object, and the API's heap is large (Litestar, web3, LangChain,
pydantic models, the OpenAPI schema): each such pause stalls every request in flight, which is
what sat in the accept latency's p99. This builds the app as the service does, then times
`gc.collect(2)` on that heap as it is, then frozen, in one run.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROUNDS = 9


def full_collection_ms() -> float:
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        gc.collect(2)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    import personalization.orchestrator.llm  # noqa: F401 - loaded by the API's lifespan (LLM styling)
    from api.app import create_app
    from config.settings import Settings

    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))  # type: ignore[call-arg]
    assert app.openapi_schema is not None  # built once, kept for the process's life
    tracked = len(gc.get_objects())
    unfrozen = full_collection_ms()
    gc.collect()
    gc.freeze()
    frozen = full_collection_ms()
    print(f"tracked objects after start-up: {tracked:,} (frozen: {gc.get_freeze_count():,})")
    print(f"{'heap':<22}{'full collection, median of ' + str(ROUNDS):>36}")
    print(f"{'as loaded (baseline)':<22}{unfrozen:>33.3f} ms")
    print(f"{'frozen (the API)':<22}{frozen:>33.3f} ms ({frozen * 1000:.1f} µs)")
    print(f"ratio: {unfrozen / max(frozen, 1e-3):,.0f}x shorter (frozen floored at 1 µs)")


if __name__ == "__main__":
    main()
