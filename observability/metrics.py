"""Prometheus metrics that pipeline workers and the minter serve on their own port."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from chain.minter import MinterHealth

log = logging.getLogger("personamint.http")


class WorkerMetrics:
    """A pipeline worker's own: how long each stage takes here, and how jobs end."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "pm_stage_duration_seconds",
            "Pipeline stage duration on this worker (stages a retry reuses are not counted again)",
            ["stage"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.jobs = Counter(
            "pm_pipeline_jobs_total", "Pipeline job runs by outcome (minting, failed, retry)", ["outcome"], registry=r
        )
        self.previews = Counter("pm_previews_rendered_total", "Previews rendered by this worker", registry=r)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)


class MinterCollector(Collector):
    """The minter's health snapshot and counters as metrics.

    Scrapes run on the metrics server's thread, while the minter's state belongs to its event
    loop: the loop hands over each snapshot (`update`) and a scrape only reads the latest one.
    """

    def __init__(self) -> None:
        self.latest: MinterHealth | None = None

    def update(self, health: MinterHealth) -> None:
        self.latest = health

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        health = self.latest
        if health is None:
            return
        labels = ["signer"]
        gauges = {
            "pm_minter_running": ("1 while the minter runs", int(health.running)),
            "pm_minter_balance_wei": ("The signer's balance as last read", health.balance_wei),
            "pm_minter_low_balance": ("1 while the balance is under the alert threshold", int(health.low_balance)),
            "pm_minter_head_block": ("The chain head the minter last saw", health.head),
            "pm_minter_pending_requests": ("Mints accepted, not yet in a transaction", health.pending_requests),
            "pm_minter_in_flight_txs": ("Transactions sent, not yet confirmed deep enough", health.in_flight_txs),
            "pm_minter_unmined_txs": ("Transactions sent, not yet mined", health.unmined_txs),
            "pm_minter_oldest_unmined_seconds": ("Age of the oldest unmined transaction", health.oldest_unmined_s),
        }
        for name, (documentation, value) in gauges.items():
            family = GaugeMetricFamily(name, documentation, labels=labels)
            if value is not None:
                family.add_metric([health.signer], float(value))
            yield family
        for counter, value in sorted(health.counters.items()):
            total = CounterMetricFamily(f"pm_minter_{counter}", f"Minter counter {counter} since start", labels=labels)
            total.add_metric([health.signer], float(value))
            yield total


def serve_process_metrics(registry: CollectorRegistry, host: str, port: int) -> Callable[[], None]:
    """Serve `registry` at http://host:port/metrics from a thread; returns the stop function."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
