"""Workers and the minter serve their own Prometheus /metrics (PERSONAMINT_METRICS_PORT)."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from devstack.anvil import AnvilProcess, free_port
from devstack.local import RedisServer, ServiceProcesses, deploy_local_contract, service_env
from jobs.model import PIPELINE_STAGES
from tests.support.stack import issue_api_key, wait_healthy

_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
JOBS = 3


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on http://127.0.0.1:port/metrics, by (name, sorted labels)."""
    with _LOOPBACK.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def eventually(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Processes:
    """One API, one worker and one minter, each its own OS process; the worker and minter with metrics ports."""

    def __init__(self, root: Path, redis_url: str, rpc_url: str) -> None:
        self.api_key = asyncio.run(issue_api_key(redis_url, "tenant-metrics"))
        address, chain_id = asyncio.run(deploy_local_contract(rpc_url))
        self.env = service_env(
            redis_url=redis_url, rpc_url=rpc_url, contract_address=address, chain_id=chain_id, data_dir=root / "data"
        )
        self.log_dir = root / "logs"
        self.worker_port, self.minter_port = free_port(), free_port()
        self.groups: list[ServiceProcesses] = []
        self.api = self._spawn("api", "api", {})
        self._spawn("worker", "worker", {"PERSONAMINT_METRICS_PORT": str(self.worker_port)})
        self._spawn("minter", "minter", {"PERSONAMINT_METRICS_PORT": str(self.minter_port)})
        wait_healthy(self.api.base_url, self.api.processes["api"], self.log_dir / "api.log")

    def _spawn(self, name: str, command: str, extra: dict[str, str]) -> ServiceProcesses:
        group = ServiceProcesses({**self.env, **extra}, port=free_port(), log_dir=self.log_dir)
        group.spawn(name, command)
        self.groups.append(group)
        return group

    def stop(self) -> None:
        for group in self.groups:
            group.stop()


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    root = tmp_path_factory.mktemp("metrics")
    with RedisServer(root / "redis") as redis_server, AnvilProcess() as anvil:
        running = Processes(root, redis_server.url, anvil.url)
        try:
            yield running
        finally:
            running.stop()


def test_worker_and_minter_metrics_count_what_they_did(processes: Processes) -> None:
    headers = {"Authorization": f"Bearer {processes.api_key}"}
    with httpx.Client(base_url=processes.api.base_url, headers=headers, timeout=30) as client:
        job_ids = [
            client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"] for _ in range(JOBS)
        ]

        def all_confirmed() -> bool:
            return all(client.get(f"/v1/mints/{job_id}").json()["status"] == "confirmed" for job_id in job_ids)

        eventually(all_confirmed, 120, "the mints to confirm")

    worker = scrape(processes.worker_port)
    for stage in PIPELINE_STAGES:  # "mint" is the minter's
        assert worker[("pm_stage_duration_seconds_count", (("stage", stage),))] == JOBS, stage
        assert worker[("pm_stage_duration_seconds_sum", (("stage", stage),))] > 0, stage
    assert worker[("pm_pipeline_jobs_total", (("outcome", "minting"),))] == JOBS
    # Timings are real: no 1024² render finishes within 5 ms.
    assert worker[("pm_stage_duration_seconds_bucket", (("le", "0.005"), ("stage", "render")))] < JOBS

    def minter_caught_up() -> bool:
        return scrape(processes.minter_port).get(("pm_minter_minted_total", (("signer", signer),)), 0) >= JOBS

    samples = scrape(processes.minter_port)
    signers = {dict(labels)["signer"] for (name, labels) in samples if name == "pm_minter_running"}
    assert len(signers) == 1
    (signer,) = signers
    eventually(minter_caught_up, 10, "the minter's health snapshot")
    minter = scrape(processes.minter_port)
    assert minter[("pm_minter_running", (("signer", signer),))] == 1
    assert minter[("pm_minter_balance_wei", (("signer", signer),))] > 0
    assert minter[("pm_minter_txs_sent_total", (("signer", signer),))] >= 1
    assert minter[("pm_minter_failed_total", (("signer", signer),))] == 0
