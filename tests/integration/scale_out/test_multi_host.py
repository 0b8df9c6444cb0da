"""Hosts simulated by processes with a data directory each: no worker needs another machine's disk.

API, two pipeline workers, the minter and the housekeeper each get their own PERSONAMINT_DATA_DIR;
what they share is what separate machines share: Redis, the chain and a remote pinner (a Kubo RPC
shim, the edge this machine has no Kubo for). Worker 1 is killed with SIGKILL right after a render
and right after a pin, again and again, while 50 mints go through; every job confirms exactly once
and the API's gateway serves every image and metadata document, bytes matching the CID, read
through to the pinner (its own disk starts empty).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import redis as redis_sync
from eth_account import Account

from devstack.anvil import AnvilProcess, free_port
from devstack.local import (
    PIPELINE_WORKER_ENV,
    RedisServer,
    ServiceProcesses,
    deploy_local_contract,
    new_api_key,
    service_env,
)
from ipfs.cid import cid_for_bytes
from tests.support.job_records import describe, statuses
from tests.support.minting import assert_minted_once
from tests.support.pinning_servers import FakeKubo
from tests.support.stack import STACK_ENV, wait_healthy

JOBS = 50
# Worker 1 dies right after these stages, in this order (a restart after each).
KILL_AFTER = ("render", "pin", "render", "pin")
SUBMIT_EVERY_S = 0.6
STAGE_DONE = re.compile(rb"stage (render|pin) done")


class Killer(threading.Thread):
    """Tails worker 1's log; SIGKILLs it the moment it reports the next stage in the plan, restarts it."""

    def __init__(self, services: ServiceProcesses, name: str) -> None:
        super().__init__(daemon=True)
        self.services = services
        self.name_ = name
        self.plan = list(KILL_AFTER)
        self.kills: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        log = self.services.log_dir / f"{self.name_}.log"
        offset = 0
        while self.plan and not self.stop.is_set():
            data = log.read_bytes()[offset:] if log.exists() else b""
            for found in STAGE_DONE.finditer(data):
                if found.group(1).decode() == self.plan[0]:
                    self.services.kill(self.name_)  # SIGKILL: no shutdown hook runs
                    self.kills.append(self.plan.pop(0))
                    offset = log.stat().st_size
                    time.sleep(0.5)
                    self.services.spawn(self.name_, "worker")
                    break
            else:
                offset += data.rfind(b"\n") + 1 if b"\n" in data else 0
                time.sleep(0.005)


def test_multi_host_separate_disks_and_kills(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as redis_server, AnvilProcess() as anvil, FakeKubo() as kubo:
        address, chain_id = asyncio.run(deploy_local_contract(anvil.url))
        env = service_env(
            redis_url=redis_server.url,
            rpc_url=anvil.url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=tmp_path / "unused",
            extra={**STACK_ENV, "PERSONAMINT_PINNERS": json.dumps([{"kind": "kubo", "url": kubo.url}])},
        )
        services = ServiceProcesses(env, port=free_port(), log_dir=tmp_path / "logs")
        hosts = {
            "api": ("api", {}),
            "worker-1": ("worker", PIPELINE_WORKER_ENV),
            "worker-2": ("worker", PIPELINE_WORKER_ENV),
            "minter": ("minter", {}),
            "housekeeper": ("housekeeper", {}),
        }
        try:
            for name, (command, own) in hosts.items():
                services.spawn(name, command, {**own, "PERSONAMINT_DATA_DIR": str(tmp_path / name)})
            wait_healthy(services.base_url, services.processes["api"], services.log_dir / "api.log")
            key = asyncio.run(new_api_key(redis_server.url, "studio"))
            killer = Killer(services, "worker-1")
            killer.start()
            with httpx.Client(base_url=services.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
                job_ids = []
                for _ in range(JOBS):
                    # Paced, so the mints outlast the kills and restarts (a restart takes seconds).
                    time.sleep(SUBMIT_EVERY_S)
                    response = client.post("/v1/mints", json={"recipient": Account.create().address})
                    assert response.status_code == 202, response.text
                    job_ids.append(response.json()["id"])
                store = redis_sync.Redis.from_url(redis_server.url)
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    found = statuses(store, job_ids)
                    if all(status in ("confirmed", "failed") for status in found.values()):
                        break
                    time.sleep(0.2)
                else:
                    raise AssertionError(f"jobs did not finish: {describe(store, job_ids)}")
                killer.stop.set()
                assert len(killer.kills) >= 3, f"worker 1 was killed only after {killer.kills}"
                jobs = [client.get(f"/v1/mints/{job_id}").json() for job_id in job_ids]
                assert Counter(job["status"] for job in jobs) == {"confirmed": JOBS}, [
                    job.get("error") for job in jobs if job["status"] != "confirmed"
                ]
                assert_minted_once(anvil.url, address, jobs, owners=True)
                # The API host's disk holds nothing pinned yet: what it serves comes through the pinner.
                assert not [p for p in (tmp_path / "api").rglob("baf*") if p.is_file()]
                for job in jobs:
                    for uri in (job["image_uri"], job["token_uri"]):
                        cid = uri.removeprefix("ipfs://")
                        served = client.get(f"/ipfs/{cid}")
                        assert served.status_code == 200, (cid, served.text)
                        assert cid_for_bytes(served.content) == cid
                    assert client.get(job["image_url"]).status_code == 200
                # No process found its image missing for good: each job's image came from the pinner.
                logs = "".join(p.read_text(errors="replace") for p in services.log_dir.glob("*.log"))
                assert "missing from the local store" not in logs
                assert "Traceback" not in logs.replace("KeyboardInterrupt", "")

                # A CID nobody here pinned: 404 at once, the pinner is not asked.
                never = cid_for_bytes(b"never pinned by this deployment")
                asked = len(kubo.calls("/api/v0/cat"))
                started = time.monotonic()
                missing = client.get(f"/ipfs/{never}")
                assert missing.status_code == 404
                assert missing.json()["code"] == "cid_not_found"
                assert time.monotonic() - started < 0.5
                assert len(kubo.calls("/api/v0/cat")) == asked
        finally:
            services.stop()
