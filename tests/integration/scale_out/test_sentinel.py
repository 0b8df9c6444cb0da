"""Redis behind Sentinel: the service follows a failover and loses nothing it accepted.

A primary, one replica and three sentinels (real redis-servers on free ports); every process is
given `redis+sentinel://…/pm/0`. `SENTINEL FAILOVER` in the middle of 100 mints: each caller retries
with its Idempotency-Key on a 503, every accepted job confirms exactly once, and no answer is a 500.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from eth_account import Account
from redis.exceptions import ConnectionError as RedisConnectionError

from api.redismux import RedisMux
from config.redis_urls import Replication, redis_client
from devstack.anvil import AnvilProcess, free_port
from devstack.local import PIPELINE_WORKER_ENV, ServiceProcesses, deploy_local_contract, service_env
from tests.support.job_records import TERMINAL, wait_until
from tests.support.minting import assert_minted_once
from tests.support.redis_ha import SentinelRedis
from tests.support.stack import STACK_ENV, issue_api_key, wait_healthy

JOBS = 100
FAILOVER_AT = 40  # accepted mints before SENTINEL FAILOVER
CALLERS = 3


def test_sentinel_client_and_mux_follow_a_failover(tmp_path: Path) -> None:
    """Both Redis clients of a process reach the new primary; WAIT refuses writes nobody replicated."""
    with SentinelRedis(tmp_path) as ha:
        before = ha.sentinels.primary()

        async def run() -> tuple[int, int]:
            client = redis_client(ha.url, max_connections=4, timeout=1)
            mux = RedisMux(ha.url)
            replication = Replication(client, 1, 500)
            try:
                await client.set("written-before", "1")
                await replication.confirm()
                ha.sentinels.failover()
                confirmed = refused = 0
                switched = False
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and confirmed < 20:
                    switched = switched or ha.sentinels.primary() != before
                    try:
                        await client.incr("counter")
                        await mux.execute("INCR", "mux-counter")
                        await replication.confirm()
                        confirmed += 1 if switched else 0
                    except RedisConnectionError:  # a demoted primary, or no replica holds the write yet
                        refused += 1
                        await asyncio.sleep(0.05)
                assert await client.get("written-before") == b"1"  # replicated before: kept
                assert await mux.execute("GET", "written-before") == b"1"
                return confirmed, refused
            finally:
                await client.aclose()
                await mux.aclose()

        confirmed, refused = asyncio.run(run())
        after = ha.sentinels.primary()
        assert after != before
        assert confirmed == 20, f"only {confirmed} writes were confirmed on a replica after the failover"
        # Until the old primary rejoins as a replica, no write can be on a replica: each was refused
        # (the caller sees a ConnectionError, the API a 503), none acknowledged.
        assert refused > 0
        print(f"refused while no replica held the writes: {refused}")


def test_sentinel_failover_under_load(tmp_path: Path) -> None:
    with SentinelRedis(tmp_path / "redis") as ha, AnvilProcess() as anvil:
        address, chain_id = asyncio.run(deploy_local_contract(anvil.url))
        env = service_env(
            redis_url=ha.url,
            rpc_url=anvil.url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=tmp_path / "data",
            extra=STACK_ENV,
        )
        services = ServiceProcesses(env, port=free_port(), log_dir=tmp_path / "logs")
        try:
            for name, command, own in (
                ("api", "api", {}),
                ("worker-1", "worker", PIPELINE_WORKER_ENV),
                ("minter", "minter", {}),
                ("housekeeper", "housekeeper", {}),
            ):
                services.spawn(name, command, own)
            wait_healthy(services.base_url, services.processes["api"], services.log_dir / "api.log")
            key = asyncio.run(issue_api_key(ha.url, "studio", rate_per_min=10_000_000, burst=1_000_000))
            primary_before = ha.sentinels.primary()

            accepted: dict[str, str] = {}
            answers: Counter[str] = Counter()
            errors: list[BaseException] = []
            lock = threading.Lock()
            next_index = iter(range(JOBS))

            def caller() -> None:
                """Mints with an Idempotency-Key each, retrying on 503 or a dropped connection."""
                try:
                    with httpx.Client(
                        base_url=services.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=15
                    ) as client:
                        for index in next_index:
                            body = {"recipient": Account.create().address}
                            while True:
                                try:
                                    response = client.post(
                                        "/v1/mints", json=body, headers={"Idempotency-Key": f"ha-{index}"}
                                    )
                                except httpx.TransportError as exc:
                                    with lock:
                                        answers[type(exc).__name__] += 1
                                    time.sleep(0.1)
                                    continue
                                with lock:
                                    answers[str(response.status_code)] += 1
                                if response.status_code == 202:
                                    with lock:
                                        accepted[f"ha-{index}"] = response.json()["id"]
                                    break
                                assert response.status_code == 503, response.text
                                assert response.headers["content-type"].startswith("application/problem+json")
                                time.sleep(0.1)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
            for thread in threads:
                thread.start()
            wait_until(lambda: len(accepted) >= FAILOVER_AT or bool(errors), 120, "mints before the failover")
            ha.sentinels.failover()
            wait_until(lambda: ha.sentinels.primary() != primary_before, 30, "the sentinels to switch the primary")
            for thread in threads:
                thread.join(300)
            assert not errors, errors
            assert len(accepted) == JOBS
            assert "500" not in answers, answers
            print(f"answers during the run: {dict(answers)}")

            with httpx.Client(base_url=services.base_url, headers={"Authorization": f"Bearer {key}"}) as client:

                def ended() -> bool:
                    found = [client.get(f"/v1/mints/{job_id}") for job_id in accepted.values()]
                    assert all(r.status_code in (200, 503) for r in found), [
                        (r.status_code, r.text[-300:]) for r in found if r.status_code not in (200, 503)
                    ]
                    return all(r.status_code == 200 and r.json()["status"] in TERMINAL for r in found)

                wait_until(ended, 240, "every accepted mint to end")
                jobs = [client.get(f"/v1/mints/{job_id}").json() for job_id in accepted.values()]
                assert Counter(job["status"] for job in jobs) == {"confirmed": JOBS}, [
                    job.get("error") for job in jobs if job["status"] != "confirmed"
                ]
            assert_minted_once(anvil.url, address, jobs)
            assert "unhandled error" not in (services.log_dir / "api.log").read_text(errors="replace")

            # Redis gone altogether (sentinels and both nodes): every answer is a 503 problem, never a 500.
            ha.stop()
            with httpx.Client(base_url=services.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
                for method, path, body in (
                    ("POST", "/v1/mints", {"recipient": Account.create().address}),
                    ("GET", f"/v1/mints/{jobs[0]['id']}", None),
                ):
                    response = client.request(method, path, json=body, timeout=30)
                    assert response.status_code == 503, (path, response.status_code, response.text)
                    assert response.json()["code"] == "service_unavailable"
        finally:
            services.stop()
