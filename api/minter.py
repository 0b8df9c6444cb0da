"""The minter process: holds the (chain, signer) lease and mints jobs off the mint queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from eth_account import Account
from saq import Worker
from web3 import AsyncHTTPProvider, AsyncWeb3

from api.errors import job_error
from api.jobs import TERMINAL
from api.lease import FencedLease, LeaseLost
from api.queue import heartbeat
from api.services import Core
from api.settings import Settings
from chain.contract import PersonaMint
from chain.errors import ContractRevert, InsufficientFunds
from chain.minter import Minter

log = logging.getLogger("personamint.minter")

# Reverts and an empty signer will not fix themselves by retrying the same call.
PERMANENT = (ContractRevert, InsufficientFunds)


async def mint_job(ctx: dict[str, Any], *, job_id: str) -> str:
    core: Core = ctx["core"]
    minter: Minter = ctx["minter"]
    saq_job = ctx.get("job")
    job = await core.jobs.get(job_id)
    if job is None:
        return "missing"
    if job.status in TERMINAL:
        return job.status
    pin = job.stages["pin"]
    sent_key = f"pm:job:{job_id}"

    async def remember_sent(tx_hash: str) -> None:
        await core.redis.hset(sent_key, "mint_tx", tx_hash)

    sent_tx = await core.redis.hget(sent_key, "mint_tx")
    started = asyncio.get_running_loop().time()
    try:
        async with heartbeat(saq_job, core.settings.job_heartbeat_s / 3):
            receipt = await minter.mint(
                bytes.fromhex(job.request_id[2:]),
                job.recipient,
                pin["token_uri"],
                sent_tx=sent_tx.decode() if sent_tx else None,
                on_sent=remember_sent,
            )
    except PERMANENT as exc:
        await core.jobs.fail(job_id, job_error(exc))
        return "failed"
    except Exception as exc:
        log.warning("mint for %s failed: %s", job_id, type(exc).__name__)
        if saq_job is not None and saq_job.attempts >= saq_job.retries:
            await core.jobs.fail(job_id, job_error(exc))
        raise
    seconds = asyncio.get_running_loop().time() - started
    await core.jobs.save_stage(
        job_id,
        "mint",
        {
            "token_id": receipt.token_id,
            "tx_hash": receipt.tx_hash,
            "block_number": receipt.block_number,
            "gas_used": receipt.gas_used,
            "contract": minter.contract.address,
            "chain_id": ctx["chain_id"],
            "already_minted": receipt.already_minted,
        },
        seconds,
    )
    await core.jobs.set_status(job_id, "confirmed", extra={"token_id": receipt.token_id})
    return "confirmed"


async def run_minter(settings: Settings) -> None:
    if not (settings.rpc_url and settings.contract_address and settings.signer_key):
        raise SystemExit("the minter needs PERSONAMINT_RPC_URL, _CONTRACT_ADDRESS and _SIGNER_KEY")
    core = Core.create(settings)
    w3 = AsyncWeb3(AsyncHTTPProvider(settings.rpc_url))
    chain_id = await w3.eth.chain_id
    if settings.chain_id is not None and chain_id != settings.chain_id:
        raise SystemExit(f"RPC chain id {chain_id} differs from PERSONAMINT_CHAIN_ID {settings.chain_id}")
    account = Account.from_key(settings.signer_key.get_secret_value())
    lease = FencedLease(core.redis, f"minter:{chain_id}:{account.address}", settings.lease_ttl_s)
    log.info("minter for %s on chain %d waiting for its lease", account.address, chain_id)
    await lease.acquire()
    log.info("minter holds lease fence %s", lease.token)
    contract = PersonaMint(w3, settings.contract_address)
    minter = Minter(w3, account, contract, confirmations=settings.confirmations, before_send=lease.ensure_held)
    await minter.resync_nonce()

    worker = Worker(
        core.mint_queue,
        functions=[mint_job],
        concurrency=settings.mint_concurrency,
        timers={"sweep": max(1, int(settings.sweep_s)), "schedule": 1, "abort": 1},
    )
    worker.context.update({"core": core, "minter": minter, "chain_id": chain_id})  # type: ignore[typeddict-item]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def keep_lease() -> None:
        while not stop.is_set():
            await asyncio.sleep(settings.lease_ttl_s / 3)
            if not await lease.renew():
                log.error("lost the minter lease; stopping")
                stop.set()

    renewer = asyncio.create_task(keep_lease())
    task = asyncio.create_task(worker.start())
    await stop.wait()
    await worker.stop()
    for pending in (task, renewer):
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, LeaseLost):
            await pending
    await lease.release()
    await core.close()
