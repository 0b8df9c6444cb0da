"""Crashes: kill -9 the worker mid-pipeline (100 jobs) and restart Redis under load; nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import httpx
import redis as redis_sync
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.contract import PersonaMint
from tests.support.job_records import TERMINAL, describe, statuses, wait_until
from tests.support.stack import Stack

PIPELINE_STAGES = {"profiling", "styling", "rendering", "pinning"}
JOBS = 100


async def chain_state(stack: Stack, jobs: list[dict[str, Any]]) -> tuple[int, list[int | None], list[str], list[int]]:
    w3 = AsyncWeb3(AsyncHTTPProvider(stack.anvil.url))
    contract = PersonaMint(w3, stack.contract_address)
    try:
        total = await contract.total_minted()
        by_request = [await contract.token_id_of(bytes.fromhex(job["request_id"][2:])) for job in jobs]
        owners = [await contract.owner_of(job["token_id"]) for job in jobs]
        balances = [int(await contract._read("balanceOf", job["recipient"])) for job in jobs]
        return total, by_request, owners, balances
    finally:
        await w3.provider.disconnect()


async def total_minted(stack: Stack) -> int:
    w3 = AsyncWeb3(AsyncHTTPProvider(stack.anvil.url))
    try:
        return await PersonaMint(w3, stack.contract_address).total_minted()
    finally:
        await w3.provider.disconnect()


def assert_confirmed_exactly_once(stack: Stack, client: httpx.Client, job_ids: list[str], before: int) -> None:
    jobs = [client.get(f"/v1/mints/{job_id}").json() for job_id in job_ids]
    assert Counter(job["status"] for job in jobs) == {"confirmed": len(job_ids)}
    token_ids = [job["token_id"] for job in jobs]
    assert len(set(token_ids)) == len(job_ids)
    total, by_request, owners, balances = asyncio.run(chain_state(stack, jobs))
    # Every recipient is a fresh wallet: exactly one token each means no job was minted twice.
    # (totalMinted is only a lower bound here: leftovers of other tests may mint meanwhile.)
    assert balances == [1] * len(jobs), "a job was minted twice (or not at all)"
    assert total - before >= len(job_ids)
    assert by_request == token_ids
    assert owners == [job["recipient"] for job in jobs]
    store = redis_sync.Redis.from_url(stack.redis.url)
    try:
        for job_id in job_ids:
            events = store.xrange(f"pm:job:{job_id}:events")
            confirmed = [e for _, e in events if e[b"status"] == b"confirmed"]
            assert len(confirmed) == 1, f"{job_id} confirmed {len(confirmed)} times"
    finally:
        store.close()


def test_kill_9_the_worker_with_jobs_in_every_stage(stack: Stack) -> None:
    key = stack.new_key("tenant-crash", rate_per_min=10_000_000, burst=1_000_000)
    store = redis_sync.Redis.from_url(stack.redis.url)
    before = asyncio.run(total_minted(stack))
    # A wider worker than the stack's, so many jobs are mid-pipeline when it dies.
    wide = {"PERSONAMINT_PIPELINE_CONCURRENCY": "12"}
    stack.services.kill("worker-0")
    worker = "worker-crash-0"
    stack.spawn(worker, "worker", wide)
    seen_at_kills: list[Counter[str]] = []
    try:
        with stack.client(key) as client:
            job_ids = []
            for index in range(JOBS):
                response = client.post(
                    "/v1/mints",
                    json={"recipient": Account.create().address},
                    headers={"Idempotency-Key": f"crash-{index}"},
                )
                assert response.status_code == 202, response.text
                job_ids.append(response.json()["id"])

            for round_ in range(1, 4):
                # Kill when several jobs are inside the pipeline at once.
                wait_until(
                    lambda: (
                        sum(s in PIPELINE_STAGES for s in statuses(store, job_ids).values()) >= 3
                        or all(s in TERMINAL | {"minting"} for s in statuses(store, job_ids).values())
                    ),
                    60,
                    "jobs in the pipeline",
                )
                seen_at_kills.append(Counter(statuses(store, job_ids).values()))
                stack.services.kill(worker)
                worker = f"worker-crash-{round_}"
                stack.spawn(worker, "worker", wide)
                # Let the new worker pick jobs up (and the dead one's be swept) before the next kill.
                done_before = sum(s in TERMINAL | {"minting"} for s in statuses(store, job_ids).values())
                wait_until(
                    lambda done=done_before: (
                        sum(s in TERMINAL | {"minting"} for s in statuses(store, job_ids).values())
                        >= min(JOBS, done + 5)
                    ),
                    120,
                    "the new worker to make progress",
                    lambda: describe(store, job_ids),
                )

            wait_until(
                lambda: all(s in TERMINAL for s in statuses(store, job_ids).values()),
                150,
                "every job to finish",
                lambda: describe(store, job_ids),
            )
            assert_confirmed_exactly_once(stack, client, job_ids, before)
    finally:
        store.close()
    killed_in = set().union(*seen_at_kills)
    print("statuses at each kill:", [dict(c) for c in seen_at_kills])
    assert killed_in & PIPELINE_STAGES, seen_at_kills
    assert sum(c[s] for c in seen_at_kills for s in PIPELINE_STAGES) >= 3


def test_redis_restart_under_load_loses_no_accepted_job(stack: Stack) -> None:
    key = stack.new_key("tenant-redis", rate_per_min=10_000_000, burst=1_000_000)
    before = asyncio.run(total_minted(stack))
    accepted: dict[str, str] = {}
    refused: Counter[int] = Counter()
    stop = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        """A caller that retries each request with its Idempotency-Key until it is accepted."""
        try:
            with stack.client(key) as client:
                index = 0
                while not stop.is_set() and index < 40:
                    idempotency_key = f"redis-{index}"
                    body = {"recipient": Account.create().address}
                    while True:
                        try:
                            response = client.post(
                                "/v1/mints", json=body, headers={"Idempotency-Key": idempotency_key}, timeout=10
                            )
                        except httpx.TransportError:
                            refused[0] += 1
                            time.sleep(0.05)
                            continue
                        if response.status_code == 202:
                            accepted[idempotency_key] = response.json()["id"]
                            break
                        assert response.status_code == 503, response.text
                        assert response.headers["content-type"].startswith("application/problem+json")
                        refused[503] += 1
                        time.sleep(0.05)
                    index += 1
                    time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        wait_until(lambda: len(accepted) >= 10 or bool(errors), 60, "load before the restart")
        stack.redis.kill()
        time.sleep(1.0)
        stack.redis.start()
        count_at_restart = len(accepted)
        wait_until(lambda: len(accepted) >= count_at_restart + 10 or bool(errors), 60, "load after the restart")
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    print(f"accepted {len(accepted)}; refused while Redis was away: {dict(refused)}")

    job_ids = list(accepted.values())
    with stack.client(key) as client:
        for job_id in job_ids:
            assert client.get(f"/v1/mints/{job_id}").status_code == 200, f"accepted job {job_id} was lost"
        store = redis_sync.Redis.from_url(stack.redis.url)
        try:
            wait_until(
                lambda: all(s in TERMINAL for s in statuses(store, job_ids).values()),
                150,
                "every accepted job to finish after the restart",
                lambda: describe(store, job_ids),
            )
        finally:
            store.close()
        assert_confirmed_exactly_once(stack, client, job_ids, before)
