"""Two chains in one deployment: two anvils with their own chain ids, a collection on each, a minter each.

50 mints spread over both collections; each token lands on its own collection's contract on its
own chain. Chain B's anvil is stopped (its state file kept) for at least 20 s: chain A's jobs go on
confirming, B's wait with a status that says why, and after B's restart every job confirms once.
A chain whose minter is not running holds its jobs with a status that says so.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis as redis_sync
from eth_account import Account

from devstack.anvil import AnvilProcess, free_port
from devstack.local import deployed_services
from tests.support.job_records import describe, statuses, wait_until
from tests.support.minting import assert_minted_once
from tests.support.stack import STACK_ENV, issue_api_key

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CHAIN_B = 31338
JOBS = 50
STOP_B_AFTER = 20  # submitted mints before chain B's anvil stops
SUBMIT_EVERY_S = 0.15
DOWN_AT_LEAST_S = 20.0


def _collections(directory: Path) -> Path:
    """The default collection (chain A, PERSONAMINT_RPC_URL) and `second` on chain B (PERSONAMINT_CHAINS's URL)."""
    directory.mkdir()
    shutil.copy(PROJECT_ROOT / "collections" / "default.toml", directory / "default.toml")
    text = (PROJECT_ROOT / "collections" / "default.toml").read_text()
    text = text.replace('id = "default"', 'id = "second"', 1)
    text, replaced = re.subn(r"(?m)^chain_id = 31337$", f"chain_id = {CHAIN_B}", text)
    assert replaced == 1
    (directory / "second.toml").write_text(text)
    return directory


def _details(store: redis_sync.Redis, job_ids: list[str]) -> dict[str, str]:
    with store.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(f"pm:job:{job_id}", "detail")
        found = pipe.execute()
    return {job_id: raw.decode() for job_id, raw in zip(job_ids, found, strict=True) if raw}


def _wait_ended(store: redis_sync.Redis, job_ids: list[str], timeout_s: float) -> None:
    wait_until(
        lambda: all(status in ("confirmed", "failed") for status in statuses(store, job_ids).values()),
        timeout_s,
        "jobs to end",
        lambda: describe(store, job_ids),
    )


def test_two_chains_each_token_on_its_own_chain_and_a_stopped_chain_waits(tmp_path: Path) -> None:
    anvil_b = AnvilProcess(chain_id=CHAIN_B, port=free_port(), state_path=tmp_path / "anvil-b-state.json")
    extra = {**STACK_ENV, "PERSONAMINT_COLLECTIONS_DIR": str(_collections(tmp_path / "collections"))}
    with anvil_b, deployed_services(tmp_path, extra=extra, chains={CHAIN_B: anvil_b}) as deployed:
        contract_b = str(deployed.chains[str(CHAIN_B)]["contract_address"])  # type: ignore[index]
        key = asyncio.run(issue_api_key(deployed.redis.url, "studio"))
        store = redis_sync.Redis.from_url(deployed.redis.url)
        by_chain: dict[str, list[str]] = {"a": [], "b": []}
        unreachable_seen: set[str] = set()
        with httpx.Client(base_url=deployed.services.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
            down_since = 0.0
            for index in range(JOBS):
                if index == STOP_B_AFTER:
                    anvil_b.stop()  # SIGINT: anvil writes its state file
                    down_since = time.monotonic()
                chain = "a" if index % 2 == 0 else "b"
                body: dict[str, Any] = {"recipient": Account.create().address}
                if chain == "b":
                    body["collection"] = "second"
                response = client.post("/v1/mints", json=body)
                assert response.status_code == 202, response.text
                by_chain[chain].append(response.json()["id"])
                time.sleep(SUBMIT_EVERY_S)

            # Chain B is down: A's jobs all confirm meanwhile; B's open jobs say why they wait.
            deadline = down_since + 90
            while True:
                for job_id, detail in _details(store, by_chain["b"]).items():
                    if f"chain {CHAIN_B} is unreachable" in detail:
                        unreachable_seen.add(job_id)
                a_done = all(status == "confirmed" for status in statuses(store, by_chain["a"]).values())
                if a_done and time.monotonic() - down_since >= DOWN_AT_LEAST_S:
                    break
                assert time.monotonic() < deadline, describe(store, by_chain["a"])
                time.sleep(0.2)
            b_open = [job_id for job_id, status in statuses(store, by_chain["b"]).items() if status != "confirmed"]
            assert len(b_open) >= JOBS // 2 - STOP_B_AFTER // 2, "B's later jobs cannot have confirmed"
            assert set(b_open) <= unreachable_seen, [
                (job_id, _details(store, [job_id])) for job_id in set(b_open) - unreachable_seen
            ]
            assert not [s for s in statuses(store, by_chain["b"]).values() if s == "failed"]

            anvil_b.start()  # same port, same state file
            _wait_ended(store, by_chain["a"] + by_chain["b"], 180)
            jobs = {
                chain: [client.get(f"/v1/mints/{job_id}").json() for job_id in ids] for chain, ids in by_chain.items()
            }
        for chain, contract, chain_id, url in (
            ("a", deployed.contract_address, deployed.chain_id, deployed.anvil.url),
            ("b", contract_b, CHAIN_B, anvil_b.url),
        ):
            found = jobs[chain]
            assert Counter(job["status"] for job in found) == {"confirmed": len(found)}, [
                job.get("error") for job in found
            ]
            assert {job["contract"] for job in found} == {contract}
            assert {job["chain_id"] for job in found} == {chain_id}
            assert_minted_once(url, contract, found, owners=True)
        logs = "".join(p.read_text(errors="replace") for p in deployed.services.log_dir.glob("*.log"))
        assert "Traceback" not in logs.replace("KeyboardInterrupt", "")


def test_two_chains_a_chain_without_a_running_minter_holds_its_jobs_and_says_so(tmp_path: Path) -> None:
    anvil_b = AnvilProcess(chain_id=CHAIN_B)
    extra = {**STACK_ENV, "PERSONAMINT_COLLECTIONS_DIR": str(_collections(tmp_path / "collections"))}
    with anvil_b, deployed_services(tmp_path, extra=extra, chains={CHAIN_B: anvil_b}) as deployed:
        services = deployed.services
        minter_b = f"minter-{CHAIN_B}"
        services.kill(minter_b)
        key = asyncio.run(issue_api_key(deployed.redis.url, "studio"))
        store = redis_sync.Redis.from_url(deployed.redis.url)
        with httpx.Client(base_url=services.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
            time.sleep(11)  # its presence key runs out
            on_a = client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"]
            on_b = client.post("/v1/mints", json={"recipient": Account.create().address, "collection": "second"})
            assert on_b.status_code == 202, on_b.text
            job_b = on_b.json()["id"]
            _wait_ended(store, [on_a], 60)
            wait_until(
                lambda: "waiting for a minter" in client.get(f"/v1/mints/{job_b}").json().get("detail", ""),
                60,
                "B's job to say it waits for a minter",
                lambda: client.get(f"/v1/mints/{job_b}").json(),
            )
            held = client.get(f"/v1/mints/{job_b}").json()
            assert held["status"] == "minting"
            assert f"chain {CHAIN_B}" in held["detail"]
            # The default chain's minter never takes it.
            time.sleep(2)
            assert client.get(f"/v1/mints/{job_b}").json()["status"] == "minting"

            services.spawn(minter_b, "minter", {"PERSONAMINT_MINTER_CHAIN_ID": str(CHAIN_B)})
            _wait_ended(store, [job_b], 60)
            job = client.get(f"/v1/mints/{job_b}").json()
            assert job["status"] == "confirmed", job
            assert job["chain_id"] == CHAIN_B
            assert job["contract"] == deployed.chains[str(CHAIN_B)]["contract_address"]  # type: ignore[index]
