"""The Lua scripts: each opens with its KEYS and ARGV, every caller passes what they name, ends match the enum."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from api.auth import Authenticator
from api.errors import ApiError
from api.idempotency import IdempotencyStore
from api.previews import PreviewDeps, PreviewService
from api.siwe import SiwePolicy, SiweService
from api.streams import StreamLeases
from jobs import lua
from jobs.fairshare import FairShare
from jobs.lease import FencedLease
from jobs.model import JobError, JobStatus, PinStage
from jobs.outbox import DueDeliveries
from jobs.ratelimit import Limit, RateLimiter
from jobs.store import JobStore
from jobs.style_caps import StyleCapLedger
from personalization.style import load_style_dna

# Included by other scripts, never called on their own.
SHARED = {"fair_fill", "gcra", "key_template", "style_caps_choose", "unless_ended"}

_NAME_OF_SOURCE = {lua.load(name): name for name in lua.names()}


class Recorder:
    """Stands in for a Redis client: records each script call (by script name) and answers it."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.calls: list[tuple[str, int, int]] = []

    def register_script(self, source: str) -> Callable[..., Awaitable[Any]]:
        name = _NAME_OF_SOURCE[source]

        async def run(keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
            return self.record(name, keys, args)

        return run

    def record(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        self.calls.append((name, len(keys), len(args)))
        return self.replies.get(name)

    async def eval_script(self, source: str, keys: list[str], args: list[Any]) -> Any:  # api.redismux.RedisMux
        return self.record(_NAME_OF_SOURCE[source], keys, args)

    async def set(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def delete(self, *args: Any) -> None:
        return None

    async def zrem(self, *args: Any) -> None:
        return None


async def _drive_every_caller() -> Recorder:
    redis = Recorder(
        {
            "accept": [b"created", b"job", b"0"],
            "set_status": b"1-0",
            "save_stage": 1,
            "release_cap": 1,
            "lease_acquire": 1,
            "lease_renew": 1,
            "lease_release": 1,
            "lease_fenced_hset": 1,
            "lease_fenced_hdel": 1,
            "outbox_claim": [],
            "ratelimit_check": [1, 0, 3],
            "idempotency_begin": [b"new"],
            "authenticate": [0],
            "preview_slot": 1,
            "stream_lease_acquire": 1,
            "stream_lease_renew": 1,
            "siwe_nonce": 1,
            "fair_admit": [b"job"],
            "fair_release": [],
            "style_caps_reserve": b'{"key":"pm:caps:c","got":{"palette":"dawn"},"counted":["palette=dawn"]}',
            "style_caps_peek": b'{"palette":"dawn"}',
        }
    )
    fake: Any = redis
    jobs = JobStore(fake)
    limit = Limit.per_minute(60, 5)
    await jobs.accept(
        tenant="t", recipient="0xab", collection="c", context={}, idempotency_key="k", recipient_limit=limit
    )
    await jobs.accept(tenant="t", recipient="0xab", collection="c", context={}, idempotency_key=None)
    await jobs.set_status("job", JobStatus.MINTING, detail="waiting", extra={"token_id": 1})
    await jobs.set_status("job", JobStatus.CONFIRMED)
    await jobs.save_stage("job", PinStage(image_cid="i", metadata_cid="m", token_uri="u", image_uri="v"), 0.1)
    await jobs.fail("job", JobError("render_failed", "bad"))
    lease = FencedLease(fake, "minter:1:0xab", ttl_s=5)
    assert await lease.try_acquire()
    await lease.renew()
    await lease.hset("pm:minter:1:0xab:txs", "0", "{}")
    await lease.hdel("pm:minter:1:0xab:txs", "0")
    await lease.release()
    await DueDeliveries(fake).claim(now=1.0, lease_until=2.0, batch=16)
    limiter = RateLimiter(fake)
    await limiter.hit(("source:a", limit))
    await limiter.hit(("source:a", limit), ("source:b", limit))

    async def produce() -> tuple[int, Any]:
        return 200, {"ok": True}

    await IdempotencyStore(fake).run(operation="op", caller="t", key="k", payload={}, produce=produce)
    authenticator = Authenticator(fake, limit)
    for prefetch in (None, "pm:job:j"):
        with pytest.raises(ApiError):  # the recorder knows no credential
            await authenticator.authenticate("Bearer pm_" + "x" * 40, prefetch)
    previews = PreviewService(
        PreviewDeps(
            redis=fake,
            personalizer=fake,
            collections={},
            render_queue=fake,
            render_timeout_s=1.0,
            ttl_s=60,
            concurrency=1,
            limiter=limiter,
            scan_limit=limit,
            tenant_in_flight=2,
        )
    )
    async with previews.in_flight("t"):
        pass
    stream_leases = StreamLeases(fake, limit=2)
    assert await stream_leases.acquire("t", "k1") is not None
    await stream_leases.refresh()
    siwe = SiweService(fake, SiwePolicy(domain="d", uri="https://d", chain_id=1), nonce_ttl_s=60, session_ttl_s=60)
    await siwe.charge("n0nce0000")
    await siwe.spend("n0nce0000", precharged=True)
    fair = FairShare(fake, per_tenant=2, enqueue=_enqueue_nothing)
    await fair.submit("t", "job")
    await fair.release("t", "job")
    caps = StyleCapLedger(fake)
    dna = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
    await caps.reserve("job", dna, {"palette": ("dawn",)})
    await caps.peek(dna, {"palette": ("dawn",)})
    return redis


async def _enqueue_nothing(job_id: str) -> None:
    return None


async def test_every_caller_passes_the_keys_and_args_its_script_names() -> None:
    redis = await _drive_every_caller()
    for name, n_keys, n_args in redis.calls:
        assert lua.header(name).accepts(n_keys, n_args), (name, n_keys, n_args, lua.header(name))
    # Every script is called by the service or included by one that is.
    called = {name for name, _, _ in redis.calls}
    included = {include for name in lua.names() for include in lua.header(name).includes}
    assert called | included == set(lua.names())
    assert included == SHARED


@pytest.mark.parametrize("name", lua.names())
def test_every_script_opens_with_a_header_naming_its_slots(name: str) -> None:
    source = lua.source(name)
    assert source.startswith("-- "), name
    header = lua.header(name)
    assert header.summary, name
    if name in SHARED - {"unless_ended"}:
        assert "no KEYS or ARGV" in header.summary
        assert "KEYS[" not in source
        assert "ARGV[" not in source
        return
    for slots, kind in ((header.keys, "KEYS"), (header.args, "ARGV")):
        numbered = [slot.index for slot in slots if slot.index]
        assert numbered == list(range(1, len(numbered) + 1)), (name, kind)
        # Every slot the code uses is named in the header, and every named one is used.
        used = {int(index) for index in re.findall(rf"{kind}\[(\d+)\]", source.split("\n\n", 1)[1])}
        if any(slot.index == 0 for slot in slots):
            continue
        assert used <= set(numbered), (name, kind, used)
        if name != "unless_ended" and "unless_ended" not in header.includes:
            assert set(numbered) <= used, (name, kind, used)
    for include in header.includes:
        assert include in lua.names()
        assert lua.load(name).index(lua.source(include)) < lua.load(name).index(lua.source(name))


def test_scripts_that_guard_ended_jobs_take_the_job_first() -> None:
    for name in lua.names():
        if "unless_ended" in lua.header(name).includes:
            assert lua.header(name).keys[0].name == "job", name
            assert lua.header(name).includes[0] == "unless_ended", name  # the guard runs first


def test_the_ended_guard_names_exactly_the_terminal_statuses() -> None:
    guarded = set(re.findall(r"current == '(\w+)'", lua.source("unless_ended")))
    assert guarded == {status.value for status in JobStatus if status.ended}


def test_a_malformed_header_line_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lua, "source", lambda name: "-- A script.\n--\n-- KEYS[1]: no name\nreturn 1\n")
    lua.header.cache_clear()
    try:
        with pytest.raises(ValueError, match="malformed header line"):
            lua.header("broken")
    finally:
        lua.header.cache_clear()
