"""JobStore on a real redis-server: an ended job stays ended, whatever a late writer does."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from devstack.local import RedisServer
from jobs.keys import events_key, job_key, minted_key
from jobs.model import JobError, MintStage
from jobs.store import JobStore


async def test_a_late_writer_cannot_move_an_ended_job(tmp_path: Path) -> None:
    # The race this guards: a pipeline retry read 'minting', the minter confirmed meanwhile, then
    # the retry wrote 'minting' again and re-enqueued the mint, which recorded 'confirmed' twice.
    with RedisServer(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url)
        jobs = JobStore(redis)
        try:
            recipient = "0x" + "ab" * 20
            accepted = await jobs.accept(
                tenant="t", recipient=recipient, collection="default", context={}, idempotency_key=None, cap=1
            )
            job_id = accepted.job_id
            await jobs.set_status(job_id, "minting")
            minted = MintStage(
                token_id=7,
                tx_hash="0x",
                block_number=1,
                gas_used=1,
                batch_size=1,
                contract="0x",
                chain_id=1,
                already_minted=False,
            )
            await jobs.save_stage(job_id, minted, 0.5)
            await jobs.set_status(job_id, "confirmed", extra={"token_id": 7})
            await jobs.save_stage(job_id, minted, 9.9)  # a duplicate mint job, late
            await jobs.set_status(job_id, "minting")  # the late pipeline retry
            await jobs.set_status(job_id, "confirmed", extra={"token_id": 7})  # its re-enqueued mint
            await jobs.fail(job_id, JobError("internal_error", "a last attempt that lost the race"))

            job = await jobs.get(job_id)
            assert job is not None
            assert job.status == "confirmed"
            assert job.error is None
            assert job.timings == {"mint": 0.5}  # the record is final: status reads keep its answer
            events = [fields[b"status"] for _, fields in await redis.xrange(events_key(job_id))]
            assert events == [b"queued", b"minting", b"confirmed"]
            # The wallet's cap slot stays taken: the token exists.
            assert await redis.get(minted_key("t", "default", recipient)) == b"1"  # per tenant (issue 13)
            assert await redis.hget(job_key(job_id), "cap_released") is None

            # A failed job is final too, and gives its slot back exactly once.
            other = await jobs.accept(
                tenant="t", recipient="0x" + "cd" * 20, collection="default", context={}, idempotency_key=None, cap=1
            )
            await jobs.fail(other.job_id, JobError("render_failed", "bad"))
            await jobs.set_status(other.job_id, "minting")
            failed = await jobs.get(other.job_id)
            assert failed is not None
            assert failed.status == "failed"
            assert await redis.get(minted_key("t", "default", "0x" + "cd" * 20)) == b"0"
        finally:
            await redis.aclose()
