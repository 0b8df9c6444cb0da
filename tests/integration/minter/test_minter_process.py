"""The minter as an OS process: SIGKILL it at any point, or beside a standby, and no token is lost or doubled."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from chain.contract import INTERFACE_ID
from chain.dev_accounts import dev_account
from chain.rpc import JsonRpc
from config.settings import Settings
from devstack.anvil import AnvilProcess, free_port
from devstack.local import RedisServer, ServiceProcesses, service_env
from jobs.model import PinStage
from jobs.queues import MINT_QUEUE, enqueue_mint, make_queue
from jobs.store import JobStore
from processes.chain_minter import minter_health
from tests.support.minting import (
    MINT_SKIPPED_TOPIC,
    ChainView,
    MintRequest,
    assert_minted_exactly,
    deploy,
    deploy_baseline_v1,
    make_requests,
)

LEASE_TTL_S = 2.0


@pytest.fixture(scope="module")
def interval_chain() -> Iterator[AnvilProcess]:
    """Half-second blocks: a sent mint waits in the pool long enough to be killed 'after send'."""
    with AnvilProcess(block_time=0.5) as node:
        yield node


class MinterHarness:
    """Real redis-server, minter processes spawned like production, jobs created through JobStore."""

    def __init__(self, tmp_path: Path, chain: AnvilProcess, redis_server: RedisServer) -> None:
        self.chain = chain
        self.redis_url = redis_server.url
        self.address = asyncio.run(deploy(chain.url))
        env = service_env(
            redis_url=self.redis_url,
            rpc_url=chain.url,
            contract_address=self.address,
            chain_id=chain.chain_id,
            data_dir=tmp_path / "data",
            extra={
                "PERSONAMINT_LEASE_TTL_S": str(LEASE_TTL_S),
                "PERSONAMINT_SWEEP_S": "1",
                "PERSONAMINT_JOB_HEARTBEAT_S": "5",
                "PERSONAMINT_CONFIRMATIONS": "2",
                "PERSONAMINT_MINT_POLL_S": "0.05",
                "PERSONAMINT_MINT_CONCURRENCY": "256",
                "PERSONAMINT_LOG_LEVEL": "INFO",
            },
        )
        self.processes = ServiceProcesses(env, port=free_port(), log_dir=tmp_path / "logs")
        self.redis = redis_sync.Redis.from_url(self.redis_url)
        signer = dev_account(1).address
        self.journal_key = f"pm:minter:{chain.chain_id}:{signer}:txs"
        self.lease_key = f"pm:lease:minter:{chain.chain_id}:{signer}"
        self.job_ids: list[str] = []
        self.requests: list[MintRequest] = []

    def close(self) -> None:
        self.processes.stop()
        self.redis.close()

    def add_jobs(self, requests: list[MintRequest]) -> None:
        self.job_ids += asyncio.run(self._create(requests))

    async def _create(self, requests: list[MintRequest]) -> list[str]:
        redis = Redis.from_url(self.redis_url)
        jobs = JobStore(redis)
        queue = make_queue(redis, MINT_QUEUE)
        settings = Settings(redis_url=self.redis_url, job_heartbeat_s=5)  # type: ignore[call-arg]
        created = []
        for _, recipient, uri in requests:
            accepted = await jobs.accept(
                tenant="kill-test", recipient=recipient, collection="default", context={}, idempotency_key=None
            )
            pin = PinStage(image_cid="", metadata_cid=uri.removeprefix("ipfs://"), token_uri=uri, image_uri="")
            await jobs.save_stage(accepted.job_id, pin, 0.01)
            await jobs.set_status(accepted.job_id, "minting")
            await enqueue_mint(queue, settings, accepted.job_id)
            job = await jobs.get(accepted.job_id)
            assert job is not None
            self.requests.append((bytes.fromhex(job.request_id[2:]), recipient, uri))
            created.append(accepted.job_id)
        await redis.aclose()
        return created

    def statuses(self) -> list[str]:
        pipe = self.redis.pipeline()
        for job_id in self.job_ids:
            pipe.hget(f"pm:job:{job_id}", "status")
        return [value.decode() for value in pipe.execute()]

    def journal(self) -> list[dict[str, object]]:
        return [json.loads(value) for value in self.redis.hgetall(self.journal_key).values()]

    def mined(self, hashes: list[str]) -> bool:
        async def check() -> bool:
            rpc = JsonRpc(self.chain.url)
            try:
                found = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            finally:
                await rpc.aclose()
            return any(receipt is not None for receipt in found)

        return bool(hashes) and asyncio.run(check())

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; logs: {self.log_tail()}")
            time.sleep(0.01)

    def lease_token(self) -> int | None:
        value = self.redis.get(self.lease_key)
        return int(value) if value else None

    def log_tail(self) -> str:
        return "".join(
            path.name + ":\n" + path.read_text()[-1500:] for path in sorted(self.processes.log_dir.glob("*.log"))
        )

    def chain_checks(self) -> tuple[list[int], int]:
        async def read() -> tuple[list[int], int]:
            view = ChainView(self.chain.url, self.address)
            try:
                token_ids = await view.token_ids_of([rid for rid, _, _ in self.requests])
                await assert_minted_exactly(view, self.requests, token_ids)
                return token_ids, len(await view.logs(MINT_SKIPPED_TOPIC))
            finally:
                await view.close()

        return asyncio.run(read())


@pytest.fixture
def harness(tmp_path: Path, interval_chain: AnvilProcess) -> Iterator[MinterHarness]:
    with RedisServer(tmp_path / "redis") as redis_server:
        harness = MinterHarness(tmp_path, interval_chain, redis_server)
        try:
            yield harness
        finally:
            harness.close()


def test_sigkill_at_any_point_then_restart_mints_exactly_once(harness: MinterHarness) -> None:
    waves = [make_requests(25) for _ in range(4)]

    def picked_up() -> bool:
        return harness.redis.llen(f"saq:{MINT_QUEUE}:active") > 0 and not harness.journal()

    def sent_not_mined() -> bool:
        # A journaled transaction not yet in a block. Judged per record: the previous wave's mined
        # transaction can still wait in the journal for its confirmations beside this wave's.
        return any(not harness.mined(list(record["hashes"])) for record in harness.journal())  # type: ignore[call-overload]

    def mined_not_confirmed() -> bool:
        journal = harness.journal()
        return bool(journal) and harness.mined([h for record in journal for h in record["hashes"]])  # type: ignore[attr-defined]

    held_before = None

    def random_moment() -> bool:
        nonlocal held_before
        token = harness.lease_token()
        if token is None or token == held_before:
            return False
        time.sleep(random.uniform(0.2, 1.5))
        return True

    kill_points = {
        "before send": picked_up,
        "after send": sent_not_mined,
        "after receipt": mined_not_confirmed,
        "at random": random_moment,
    }
    kills: list[str] = []
    harness.processes.spawn("minter", "minter")
    for wave, (name, condition) in zip(waves, kill_points.items(), strict=True):
        held_before = harness.lease_token()
        harness.add_jobs(wave)
        harness.wait_for(condition, 60, f"the moment to kill ({name})")
        harness.processes.kill("minter")
        journal = harness.journal()
        kills.append(
            f"{name}: {len(journal)} unconfirmed tx(s) journaled, "
            f"{harness.statuses().count('confirmed')}/{len(harness.job_ids)} jobs confirmed"
        )
        harness.processes.spawn("minter", "minter")
    harness.wait_for(
        lambda: all(status in ("confirmed", "failed") for status in harness.statuses()), 120, "every job to end"
    )
    print("\n".join(kills))
    assert harness.statuses() == ["confirmed"] * 100, harness.log_tail()
    assert harness.redis.hlen(harness.journal_key) == 0, "nothing left unconfirmed"
    token_ids, skipped = harness.chain_checks()
    assert sorted(token_ids) == list(range(1, 101)), "exactly 100 tokens, none twice"
    # The design goal is stronger than the contract's guard: no request was even sent twice.
    assert skipped == 0, "a request was sent again after it had been minted"
    stages = [harness.redis.hget(f"pm:job:{job_id}", "stage:mint") for job_id in harness.job_ids]
    assert [json.loads(stage)["token_id"] for stage in stages if stage] == token_ids


def test_a_standby_minter_takes_over_within_seconds_without_double_sending(harness: MinterHarness) -> None:
    harness.processes.spawn("minter-a", "minter")
    harness.wait_for(lambda: harness.lease_token() is not None, 30, "minter A to take the lease")
    first = harness.lease_token()
    harness.processes.spawn("minter-b", "minter")
    harness.add_jobs(make_requests(60))
    harness.wait_for(lambda: bool(harness.journal()), 30, "minter A to send")
    log_b = harness.processes.log_dir / "minter-b.log"
    assert "holds lease" not in log_b.read_text(), "the standby must wait while A holds the lease"
    harness.processes.kill("minter-a")
    killed_at = time.monotonic()
    harness.wait_for(lambda: harness.lease_token() not in (None, first), 30, "minter B to take over")
    takeover_s = time.monotonic() - killed_at
    assert takeover_s < LEASE_TTL_S + 5, f"takeover took {takeover_s:.1f}s"
    harness.wait_for(lambda: set(harness.statuses()) == {"confirmed"}, 90, "every job to be confirmed")
    assert "holds lease" in log_b.read_text()
    token_ids, skipped = harness.chain_checks()
    assert sorted(token_ids) == list(range(1, 61))
    assert skipped == 0
    # The live minter reports its health (signer balance, counters) for the API's health detail.
    harness.wait_for(lambda: bool(asyncio.run(_health(harness.redis_url))), 10, "a health report")
    (report,) = asyncio.run(_health(harness.redis_url))
    assert report["signer"] == dev_account(1).address
    assert report["low_balance"] is False
    assert report["balance_wei"] > 0
    assert report["counters"]["minted"] + report["counters"]["already_minted"] > 0


async def _health(redis_url: str) -> list[dict[str, object]]:
    redis = Redis.from_url(redis_url)
    try:
        return await minter_health(redis)
    finally:
        await redis.aclose()


def test_a_fee_spike_shows_why_jobs_wait_then_they_confirm_or_end_fee_ceiling(harness: MinterHarness) -> None:
    def spike() -> None:
        async def call() -> None:
            rpc = JsonRpc(harness.chain.url)
            try:
                await rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(400 * 10**9)])
            finally:
                await rpc.aclose()

        asyncio.run(call())

    def details() -> list[str]:
        return [(harness.redis.hget(f"pm:job:{job_id}", "detail") or b"").decode() for job_id in harness.job_ids]

    def hold_spike_until(condition: Callable[[], bool], what: str) -> None:
        # Interval mining lowers the base fee 12.5% a block: keep it up until the condition holds.
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; logs: {harness.log_tail()}"
            spike()
            time.sleep(0.1)

    harness.processes.env["PERSONAMINT_FEE_CEILING_GWEI"] = "50"
    harness.processes.env["PERSONAMINT_FEE_MAX_WAIT_S"] = "1"
    spike()
    harness.processes.spawn("minter-short", "minter")
    harness.add_jobs(make_requests(3))
    hold_spike_until(lambda: set(harness.statuses()) == {"failed"}, "the short-wait jobs to fail")
    for job_id in harness.job_ids:
        assert json.loads(harness.redis.hget(f"pm:job:{job_id}", "error"))["code"] == "fee_ceiling"
    harness.processes.kill("minter-short", signal.SIGTERM)  # a clean stop hands the lease over at once

    harness.processes.env["PERSONAMINT_FEE_MAX_WAIT_S"] = "120"
    failed = list(harness.job_ids)
    harness.job_ids.clear()
    harness.processes.spawn("minter", "minter")
    harness.add_jobs(make_requests(10))
    hold_spike_until(lambda: all("ceiling" in detail for detail in details()), "a 'why' on every waiting job")
    assert set(harness.statuses()) == {"minting"}
    # Left alone, the base fee falls under the ceiling within a few blocks and the jobs go out.
    harness.wait_for(lambda: set(harness.statuses()) == {"confirmed"}, 60, "the waiting jobs to confirm")
    assert all(harness.redis.hget(f"pm:job:{job_id}", "stage:mint") for job_id in harness.job_ids)
    assert all(harness.redis.hget(f"pm:job:{job_id}", "status") == b"failed" for job_id in failed)


def test_the_minter_refuses_a_contract_whose_interface_it_does_not_know(tmp_path: Path) -> None:
    # v1 (the benchmarks' baseline: mint(address,string,bytes32)) and an address without code:
    # each stops the minter before it takes a lease, with a message that says what to do.
    with AnvilProcess() as chain, RedisServer(tmp_path / "redis") as redis_server:
        v1 = deploy_baseline_v1(chain.url)
        for address in (v1, dev_account(7).address):
            env = service_env(
                redis_url=redis_server.url,
                rpc_url=chain.url,
                contract_address=address,
                chain_id=chain.chain_id,
                data_dir=tmp_path / "data",
            )
            processes = ServiceProcesses(env, port=free_port(), log_dir=tmp_path / f"logs-{address}")
            process = processes.spawn("minter", "minter")
            try:
                assert process.wait(timeout=60) != 0
            finally:
                processes.stop()
            log = (processes.log_dir / "minter.log").read_text()
            assert f"refusing to start: {address} on chain {chain.chain_id} is not a PersonaMint v2 contract" in log
            assert f"0x{INTERFACE_ID.hex()}" in log
            assert "personamint deploy" in log
            assert "Traceback" not in log
            assert redis_sync.Redis.from_url(redis_server.url).keys("pm:lease:*") == []
