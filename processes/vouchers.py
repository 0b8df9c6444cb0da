"""Collector-paid mints in the minter process: sign the job's EIP-712 voucher, then watch the chain
until the collector's transaction is confirmed (`confirmed`) or the deadline has passed (`expired`).

A job with a voucher out sits in its chain's watch set (jobs.keys.voucher_watch_key, by when to
look next), not in a queue slot: thousands of open vouchers cost one `tokenIdOf` read each per
round and hold nothing. The set lives in Redis beside the job, so a minter that restarts (or its
standby) picks the watch up; the reconciler re-enqueues a `voucher_ready` job like a minting one
and the mint job puts it back in the set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from chain.contract import Voucher
from chain.errors import ChainError
from chain.minter import Minter
from chain.minter.config import MintReceipt
from chain.token_uri import uri_parts
from config.clients import Core
from jobs.keys import voucher_watch_key
from jobs.model import Job, JobStatus, MintStage, VoucherStage

log = logging.getLogger("personamint.vouchers")

# An idle chain (anvil without traffic) makes no block after the deadline: once the clock is this far
# past it, no block a collector's transaction could still land in has a timestamp within it.
IDLE_CHAIN_GRACE_S = 60.0


async def issue_voucher(core: Core, minter: Minter, job: Job, contract: str, chain_id: int) -> str:
    """Sign the job's voucher once (saved: a retry answers the same one), mark it `voucher_ready`
    and put the job in the chain's watch set. Returns the job's status."""
    pin = job.pin
    assert pin is not None  # the mint job checked
    voucher = job.voucher
    if voucher is None:
        started = time.perf_counter()
        policy = core.vouchers[job.collection]
        ttl_s = min(policy.ttl_s, job.voucher_ttl_s or policy.ttl_s)
        signed = Voucher(
            recipient=job.recipient,
            request_id=bytes.fromhex(job.request_id.removeprefix("0x")),
            token_uri=pin.token_uri,
            price_wei=policy.price_wei,
            deadline=int(time.time()) + ttl_s,
        )
        target = minter.contracts[contract]
        signature = await minter.account.sign_typed_data(target.voucher_typed_data(chain_id, signed))
        digest, codec = uri_parts(pin.token_uri)
        voucher = VoucherStage(
            recipient=job.recipient,
            request_id=job.request_id,
            digest="0x" + digest.hex(),
            codec=codec,
            price_wei=signed.price_wei,
            deadline=signed.deadline,
            signature="0x" + signature.hex(),
            signer=minter.account.address,
            contract=contract,
            chain_id=chain_id,
            call_data="0x" + target.mint_with_voucher_call_data(signed, signature).hex(),
        )
        await core.jobs.save_stage(job.id, voucher, time.perf_counter() - started)
    if job.status is not JobStatus.VOUCHER_READY:
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(voucher.deadline))
        await core.jobs.set_status(
            job.id,
            JobStatus.VOUCHER_READY,
            detail=f"waiting for the collector's mintWithVoucher transaction (voucher valid until {until})",
            extra={"deadline": voucher.deadline},
        )
    route = core.routes.for_collection(job.collection).chain.key
    await core.redis.zadd(voucher_watch_key(route), {job.id: time.time()})
    return JobStatus.VOUCHER_READY


class VoucherWatcher:
    """Moves this chain's `voucher_ready` jobs to `confirmed` or `expired`, reading the chain each round."""

    def __init__(self, core: Core, minter: Minter, *, route: str, chain_id: int, poll_s: float = 1.0) -> None:
        self.core = core
        self.minter = minter
        self.key = voucher_watch_key(route)
        self.chain_id = chain_id
        self.poll_s = poll_s
        self._stop = asyncio.Event()
        self._chain_trouble = False

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
                if self._chain_trouble:
                    log.info("voucher watch: the chain answers again")
                    self._chain_trouble = False
            except ChainError as exc:
                if not self._chain_trouble:
                    log.warning("voucher watch: chain %d not answering (%s); retrying", self.chain_id, exc)
                self._chain_trouble = True
            except Exception as exc:  # noqa: BLE001 - Redis away: the next round tries again
                log.warning("voucher watch: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.poll_s)

    def stop(self) -> None:
        self._stop.set()

    async def run_once(self, limit: int = 500) -> int:
        """One look at every job due; returns how many ended."""
        redis = self.core.redis
        due: Any = await redis.zrangebyscore(self.key, "-inf", time.time(), 0, limit)
        if not due:
            return 0
        latest = await self.minter.rpc.call("eth_getBlockByNumber", ["latest", False])
        head = int(latest["number"], 16)
        confirmations = self.minter.config.confirmations
        deep = head - (confirmations - 1)
        deep_block = latest if deep == head else await self.minter.rpc.call("eth_getBlockByNumber", [hex(deep), False])
        deep_ts = int(deep_block["timestamp"], 16)
        ended = 0
        for raw in due:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if await self._check(job_id, head=head, deep_ts=deep_ts, latest_ts=int(latest["timestamp"], 16)):
                await redis.zrem(self.key, job_id)
                ended += 1
            else:
                await redis.zadd(self.key, {job_id: time.time() + self.poll_s})
        return ended

    async def _check(self, job_id: str, *, head: int, deep_ts: int, latest_ts: int) -> bool:
        """True when the job is out of the watch (ended now or before)."""
        jobs = self.core.jobs
        job = await jobs.get(job_id)
        if job is None or job.status.ended or job.voucher is None:
            return True
        voucher = job.voucher
        receipt = await self.minter.find_existing(bytes.fromhex(voucher.request_id[2:]), voucher.contract)
        if receipt is not None:
            return await self._redeemed(job, voucher, receipt, head)
        if deep_ts > voucher.deadline or (latest_ts <= voucher.deadline < time.time() - IDLE_CHAIN_GRACE_S):
            await jobs.expire(
                job_id, f"the voucher's deadline passed unused (block time {deep_ts} > {voucher.deadline})"
            )
            return True
        return False

    async def _redeemed(self, job: Job, voucher: VoucherStage, receipt: MintReceipt, head: int) -> bool:
        depth = head - receipt.block_number + 1
        needed = self.minter.config.confirmations
        if depth < needed:
            detail = f"voucher used in {receipt.tx_hash}; {depth} of {needed} confirmations"
            if job.detail != detail:
                await self.core.jobs.set_status(job.id, JobStatus.VOUCHER_READY, detail=detail)
            return False
        minted = MintStage(
            token_id=receipt.token_id,
            tx_hash=receipt.tx_hash,
            block_number=receipt.block_number,
            gas_used=receipt.gas_used,
            batch_size=1,
            contract=voucher.contract,
            chain_id=voucher.chain_id,
            already_minted=False,
        )
        await self.core.jobs.save_stage(job.id, minted, 0.0)
        await self.core.jobs.set_status(job.id, JobStatus.CONFIRMED, extra={"token_id": receipt.token_id})
        log.info(
            "job %s: the collector minted token %d with its voucher", job.id, receipt.token_id, extra={"job_id": job.id}
        )
        return True
