"""The minter process: holds the (chain, signer) lease and mints its chain's jobs off that chain's mint queue.

One runs per chain a deployment mints on (PERSONAMINT_MINTER_CHAIN_ID; unset: the default chain).
Every collection on that chain is minted here, in its own contract, from one signer and one nonce
space; another chain's jobs are in another queue that this process never reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from typing import Any

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from saq import Worker
from saq.job import Status
from saq.queue.redis import RedisQueue
from saq.types import Context

from chain.contract import INTERFACE_ID, PersonaMint
from chain.errors import ChainError, ContractRevert, InsufficientFunds
from chain.fees import GWEI, FeeCeilingExceeded, FeePolicy
from chain.journal import TxRecord
from chain.minter import Minter, MinterConfig, MintProgress, MintTimeout, RequestIdReused, SendRejected
from chain.rpc import JsonRpc
from chain.web3 import connect_web3
from config.chain_check import (
    BalanceWatch,
    is_loopback_anvil,
    refuse_wrong_chains,
    rpc_balance,
    service_signer,
    signer_balance_floor_wei,
    webhook_alert,
)
from config.chains import DEFAULT_CHAIN, ChainRoute, ChainRouteError
from config.clients import Core
from config.settings import Settings
from jobs.errors import job_error
from jobs.keys import MINTER_HEALTH_PATTERN, minter_health_key, minter_journal_key
from jobs.lease import FencedLease, LeaseLost
from jobs.minters import WAITING_FOR_MINTER, mark_alive
from jobs.model import JobError, JobStatus, MintStage, Payer
from jobs.queues import MINT_QUEUE, TurnTakingQueue, enqueue_mint, heartbeat, worker_timers
from observability.logging import job_context
from observability.metrics import MinterCollector, serve_process_metrics
from processes.vouchers import VoucherWatcher, issue_voucher

log = logging.getLogger("personamint.minter")

# Reverts, an empty signer, fees that stayed above the ceiling, sends the node keeps refusing,
# and a request id whose token is another request's will not fix themselves by running again.
PERMANENT = (ContractRevert, InsufficientFunds, FeeCeilingExceeded, SendRejected, RequestIdReused)
HEALTH_TTL_S = 30
HEALTH_EVERY_S = 2.0  # how often the health report (Redis, /metrics) is refreshed


def minter_config(settings: Settings, route: ChainRoute | None = None) -> MinterConfig:
    """The chain library's minter knobs, from the service settings and the chain's route (its collections'
    confirmations and fee ceiling: the most careful of them)."""
    ceiling_wei = None if settings.fee_ceiling_gwei is None else int(settings.fee_ceiling_gwei * GWEI)
    return MinterConfig(
        confirmations=settings.confirmations if route is None else route.confirmations,
        poll_s=settings.mint_poll_s,
        gas_budget=settings.mint_gas_budget,
        max_batch=settings.mint_max_batch,
        gas_margin=settings.mint_gas_margin,
        stall_s=settings.mint_stall_s,
        stall_blocks=settings.mint_stall_blocks,
        fees=FeePolicy(
            ceiling_wei=ceiling_wei if route is None else route.max_fee_per_gas_wei,
            priority_fee_wei=None if settings.fee_priority_gwei is None else int(settings.fee_priority_gwei * GWEI),
            legacy=settings.fee_legacy,
        ),
        max_fee_wait_s=settings.fee_max_wait_s,
        # The one signer-balance threshold and cadence: this reading also feeds the alert.
        low_balance_wei=signer_balance_floor_wei(settings),
        balance_check_s=settings.balance_check_s,
        logs_from_block=settings.contract_deploy_block if route is None else route.deploy_block,
    )


class RedisMintJournal:
    """The minter's unconfirmed transactions in one Redis hash; writes are fenced by the lease."""

    def __init__(self, redis: Redis, lease: FencedLease, chain_id: int, signer: str) -> None:
        self.redis = redis
        self.lease = lease
        self.key = minter_journal_key(chain_id, signer)

    async def load(self) -> list[TxRecord]:
        raw = await self.redis.hgetall(self.key)
        return sorted((TxRecord.from_json(value) for value in raw.values()), key=lambda record: record.nonce)

    async def put(self, record: TxRecord) -> None:
        # Written before each broadcast. First, what the transaction mints (the jobs, their pinned
        # metadata, every write before) must be on the replicas: a primary cut off by a failover
        # takes writes nobody else will see, and the chain must never get a mint for one of them
        # (its caller was answered 503 and retries as a new job with the same request id).
        if self.lease.replication is not None:
            await self.lease.replication.confirm()
        await self.lease.hset(self.key, str(record.nonce), record.to_json())

    async def delete(self, nonce: int) -> None:
        await self.lease.hdel(self.key, str(nonce))


class _MintQueue(TurnTakingQueue):
    """The mint queue with a sweep that re-queues lost jobs without aborting them first.

    SAQ's sweep waits up to 5 s per job for its (dead) worker to acknowledge an abort, and
    it sweeps a job that was just dequeued but not yet marked active; the abort then races
    the worker's own status writes and can leave the job in no list at all. A mint job is
    idempotent (the minter dedupes by request id), so a stuck job is simply re-queued, and a
    job seen not-yet-active is re-queued only if it is still so at the next sweep.
    """

    def __init__(self, redis: Redis, *, sweep_every_s: float, name: str = MINT_QUEUE) -> None:
        super().__init__(redis, name=name)
        self._sweep_every_s = max(1, int(sweep_every_s))
        self._not_active: set[str] = set()

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        if not await self.redis.set(self.namespace("sweep"), 1, ex=self._sweep_every_s, nx=True):
            return []
        swept = []
        seen_not_active = set()
        for raw_id in await self.redis.lrange(self.namespace("active"), 0, -1):
            job_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            saq_job = await self.job(self.job_key_from_id(job_id))
            if saq_job is None:
                await self.redis.lrem(self.namespace("active"), 0, job_id)
                continue
            if saq_job.status != Status.ACTIVE and not saq_job.stuck:
                seen_not_active.add(job_id)
                if job_id not in self._not_active:
                    continue
            elif not saq_job.stuck:
                continue
            await self.retry(saq_job, error="swept")
            swept.append(job_id)
        self._not_active = seen_not_active - set(swept)
        return swept


async def retry_orphans(queue: RedisQueue) -> int:
    """Put the jobs a dead predecessor held back on the queue at once (we hold the lease, so it is dead)."""
    active = await queue.redis.lrange(queue.namespace("active"), 0, -1)
    retried = 0
    for raw_id in active:
        job_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        saq_job = await queue.job(queue.job_key_from_id(job_id))
        if saq_job is None:
            await queue.redis.lrem(queue.namespace("active"), 0, job_id)
            continue
        await queue.retry(saq_job, error="the minter holding it stopped")
        retried += 1
    return retried


class MinterContext(Context, total=False):
    """SAQ's task context plus the minter process's own clients."""

    core: Core
    minter: Minter
    chain_id: int
    route: str


async def mint_job(ctx: MinterContext, *, job_id: str) -> str:
    """SAQ entry point (its name is the queue's function name); every log line carries the job id."""
    with job_context(job_id):
        return await _mint_job(ctx, job_id)


async def _mint_job(ctx: MinterContext, job_id: str) -> str:
    core, minter = ctx["core"], ctx["minter"]
    saq_job = ctx.get("job")
    job = await core.jobs.get(job_id)
    if job is None:
        return "missing"
    if job.status.ended:
        return job.status
    pin = job.pin
    if pin is None:
        await core.jobs.fail(job_id, JobError("not_pinned", "the job reached the minter without a pin"))
        return JobStatus.FAILED
    shown: dict[str, str | None] = {"detail": None}
    route = core.routes.for_collection(job.collection)
    contract = route.contract_address
    if route.chain.key != ctx["route"] or contract not in minter.contracts:
        # Enqueued under other collection files (edited since): the job goes to its chain's minter.
        log.warning("job %s is for %s, not this minter's chain; moving it there", job_id, route.chain.label)
        await enqueue_mint(core.mint_queue_for(job.collection), core.settings, job_id)
        return "rerouted"
    if job.payer is Payer.COLLECTOR:
        # The collector sends the transaction: sign its voucher and watch the chain for it.
        return await issue_voucher(core, minter, job, contract, ctx["chain_id"])
    if job.detail and job.detail.startswith(WAITING_FOR_MINTER):
        await core.jobs.set_status(job_id, JobStatus.MINTING, detail=f"a minter on chain {ctx['chain_id']} took it")

    async def on_progress(progress: MintProgress) -> None:
        # Only waits and setbacks are worth a status event; the sent transaction is the minter's
        # to track (its journal), and the confirmed one lands in the mint stage.
        if progress.state in ("waiting", "requeued") or shown["detail"] is not None:
            detail = progress.detail if progress.state in ("waiting", "requeued") else None
            if detail != shown["detail"]:
                shown["detail"] = detail
                await core.jobs.set_status(job_id, JobStatus.MINTING, detail=detail or progress.detail)

    started = asyncio.get_running_loop().time()
    # Finish before SAQ's own timeout would cancel us: a cancelled job could not record why it
    # ended. The request stays tracked by the minter, so the retry picks it up where it is.
    deadline_s = max(1.0, core.settings.job_timeout_s - 10.0)
    try:
        async with heartbeat(saq_job, core.settings.job_heartbeat_s / 3):
            try:
                receipt = await asyncio.wait_for(
                    minter.mint(
                        bytes.fromhex(job.request_id.removeprefix("0x")),
                        job.recipient,
                        pin.token_uri,
                        on_progress=on_progress,
                        contract=contract,
                    ),
                    deadline_s,
                )
            except TimeoutError:
                raise MintTimeout(f"not confirmed within {deadline_s:.0f}s; the request is still tracked") from None
    except PERMANENT as exc:
        await core.jobs.fail(job_id, job_error(exc))
        return JobStatus.FAILED
    except Exception as exc:
        log.warning("mint for %s failed: %s", job_id, type(exc).__name__)
        if saq_job is not None and saq_job.attempts >= saq_job.retries:
            await core.jobs.fail(job_id, job_error(exc))
        raise
    seconds = asyncio.get_running_loop().time() - started
    minted = MintStage(
        token_id=receipt.token_id,
        tx_hash=receipt.tx_hash,
        block_number=receipt.block_number,
        gas_used=receipt.gas_used,
        batch_size=receipt.batch_size,
        contract=contract,
        chain_id=ctx["chain_id"],
        already_minted=receipt.already_minted,
    )
    await core.jobs.save_stage(job_id, minted, seconds)
    await core.jobs.set_status(job_id, JobStatus.CONFIRMED, extra={"token_id": receipt.token_id})
    return JobStatus.CONFIRMED


async def publish_health(redis: Redis, minter: Minter, chain_id: int, route: str = DEFAULT_CHAIN) -> None:
    """Write the minter's health and counters where any process can read them (see `minter_health`),
    and that its route has a live minter (what a job waiting in that route's queue is told)."""
    health = minter.health()
    document = {**health.__dict__, "chain_id": chain_id, "route": route, "at": time.time()}
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(minter_health_key(chain_id, health.signer), json.dumps(document), ex=HEALTH_TTL_S)
        mark_alive(pipe, route, health.signer)
        await pipe.execute()


async def minter_health(redis: Redis) -> list[dict[str, Any]]:
    """Every live minter's last health report (signer balance, low_balance, stuck transactions, counters).

    An empty list means no minter has reported in the last HEALTH_TTL_S seconds.
    """
    reports = []
    async for key in redis.scan_iter(match=MINTER_HEALTH_PATTERN):
        raw = await redis.get(key)
        if raw:
            reports.append(json.loads(raw))
    return reports


async def _minter_core(settings: Settings) -> Core:
    """The shared clients on the bounded pool (`redis_max_connections`), waiting longer for a free one.

    mint_concurrency SAQ slots share that pool: a slot holds a connection only for one command,
    and the slots waiting for work take turns at one blocking dequeue (_MintQueue), so the
    minter's connections stay within the pool's size whatever the concurrency. A background
    process waits up to 30 s for a connection rather than failing a mint.
    """
    patient = settings.model_copy(update={"redis_pool_timeout_s": max(settings.redis_pool_timeout_s, 30.0)})
    return Core.create(patient, client_name="personamint-minter")


async def _first_answering(urls: tuple[str, ...], timeout_s: float) -> tuple[JsonRpc, int]:
    """The chain's first RPC URL that answers eth_chainId (the rest are fallbacks), and that chain id."""
    problems = []
    for index, url in enumerate(urls):
        rpc = JsonRpc(url, timeout_s=timeout_s)
        try:
            return rpc, int(await rpc.call("eth_chainId"), 16)
        except ChainError as exc:
            problems.append(f"RPC URL #{index + 1}: {type(exc).__name__}")
            await rpc.aclose()
    raise SystemExit(f"no RPC URL of this minter's chain answered ({'; '.join(problems)})")


async def refuse_unknown_contracts(contracts: list[PersonaMint], chain_id: int) -> None:
    """Exit unless every contract reports IPersonaMintV2 over ERC-165: minting into another one
    (v1, a foreign contract, a typo'd address) would encode calls it does not understand."""
    for contract in contracts:
        try:
            known = await contract.is_persona_mint_v2()
        except ChainError as exc:
            raise SystemExit(
                f"refusing to start: cannot read the contract {contract.address} on chain {chain_id}: {exc}"
            ) from None
        if not known:
            raise SystemExit(
                f"refusing to start: {contract.address} on chain {chain_id} is not a PersonaMint v2 contract "
                f"(no code there, or it does not report interface 0x{INTERFACE_ID.hex()} over ERC-165); "
                "deploy one with `personamint deploy` and set its address"
            )


async def run_minter(settings: Settings) -> None:
    core = await _minter_core(settings)
    try:
        route = core.routes.minter_chain(settings.minter_chain_id)
    except ChainRouteError as exc:
        raise SystemExit(f"refusing to start: {exc}") from None
    if not (route.rpc_urls and route.contracts):
        raise SystemExit(
            f"the minter for {route.label} needs an RPC URL and a contract: PERSONAMINT_RPC_URL and "
            "PERSONAMINT_CONTRACT_ADDRESS (default chain), else the collections' [chain] rpc_urls and "
            "[deployment] contract_address or PERSONAMINT_CHAINS"
        )
    rpc, chain_id = await _first_answering(route.rpc_urls, settings.rpc_timeout_s)
    if route.chain_id is not None and chain_id != route.chain_id:
        raise SystemExit(f"RPC chain id {chain_id} differs from {route.label}'s")
    await refuse_wrong_chains(settings, chain_ids={chain_id})
    try:
        # Local mode's extra chains are anvils with ids of their own; its dev keys are fine there.
        dev_chain = settings.env == "local" and await is_loopback_anvil(rpc)
        account = await service_signer(settings, chain_id=chain_id, dev_chain=dev_chain)
    except ChainError as exc:
        raise SystemExit(f"refusing to start: {exc}") from None
    w3 = connect_web3(rpc.url)
    contracts = [PersonaMint(w3, address) for address in route.contracts]
    await refuse_unknown_contracts(contracts, chain_id)
    lease = FencedLease(
        core.redis, f"minter:{chain_id}:{account.address}", settings.lease_ttl_s, replication=core.replication
    )
    log.info("minter for %s on chain %d waiting for its lease", account.address, chain_id)
    await lease.acquire(poll_s=min(0.5, settings.lease_ttl_s / 4))
    log.info("minter holds lease fence %s", lease.token)

    journal = RedisMintJournal(core.redis, lease, chain_id, account.address)
    minter = Minter(
        rpc,
        account,
        contracts[0],
        minter_config(settings, route),
        journal=journal,
        chain_id=chain_id,
        contracts=contracts[1:],
    )
    await minter.start()
    log.info("minting on chain %d in %d contract(s) from queue %s", chain_id, len(contracts), route.mint_queue)
    queue = _MintQueue(core.redis, sweep_every_s=settings.sweep_s, name=route.mint_queue)
    orphans = await retry_orphans(queue)
    if orphans:
        log.info("requeued %d mint jobs the previous minter held", orphans)

    worker: Worker[MinterContext] = Worker(
        queue,
        functions=[mint_job],
        concurrency=settings.mint_concurrency,
        timers=worker_timers(settings.sweep_s),
    )
    worker.context.update({"core": core, "minter": minter, "chain_id": chain_id, "route": route.key})
    with contextlib.suppress(Exception):  # at once, not HEALTH_EVERY_S later: waiting jobs may go on
        await publish_health(core.redis, minter, chain_id, route.key)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def keep_lease() -> None:
        while not stop.is_set():
            await asyncio.sleep(settings.lease_ttl_s / 3)
            try:
                held = await lease.renew()
            except Exception as exc:  # noqa: BLE001 - a Redis blip is retried until the lease runs out
                log.warning("lease renewal failed: %s", exc)
                continue
            if not held:
                log.error("lost the minter lease; stopping")
                stop.set()

    collector = MinterCollector()
    stop_metrics = None
    if settings.metrics_port is not None:
        registry = CollectorRegistry()
        registry.register(collector)
        stop_metrics = serve_process_metrics(registry, settings.metrics_host, settings.metrics_port)

    watch = None
    if settings.alert_webhook_url and settings.alert_webhook_secret:
        # The minter logs and counts a low balance itself; the watch adds the signed webhook for
        # on-call, fed the minter's own readings (one balance poller per signer).
        watch = BalanceWatch(
            rpc_balance(rpc.call),
            account.address,
            chain_id=chain_id,
            threshold_wei=signer_balance_floor_wei(settings),
            on_low=webhook_alert(
                settings.alert_webhook_url,
                secret=settings.alert_webhook_secret.get_secret_value(),
                allow_loopback=settings.webhook_allow_loopback,
            ),
        )

    async def report_health() -> None:
        while not stop.is_set():
            health = minter.health()
            collector.update(health)
            with contextlib.suppress(Exception):
                await publish_health(core.redis, minter, chain_id, route.key)
            if watch is not None and health.balance_wei is not None:
                await watch.observe(health.balance_wei)
            await asyncio.sleep(HEALTH_EVERY_S)

    vouchers = VoucherWatcher(core, minter, route=route.key, chain_id=chain_id, poll_s=settings.voucher_poll_s)
    background = [
        asyncio.create_task(keep_lease()),
        asyncio.create_task(report_health()),
        asyncio.create_task(vouchers.run()),
    ]
    task = asyncio.create_task(worker.start())
    # SAQ installs its own SIGTERM/SIGINT handlers when it starts, so a signal ends the worker
    # task rather than setting `stop`: wait for either.
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    stopping.cancel()
    vouchers.stop()
    await worker.stop()
    await minter.stop()
    for pending in (task, *background):
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, LeaseLost):
            await pending
    await lease.release()
    if stop_metrics is not None:
        stop_metrics()
    await rpc.aclose()
    await w3.provider.disconnect()
    await core.close()
