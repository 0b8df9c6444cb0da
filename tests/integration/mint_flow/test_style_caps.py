"""Rarity caps on a real redis-server: concurrent mints never pass a cap; failures give reservations back."""

from __future__ import annotations

import asyncio
import copy
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from eth_account import Account
from redis.asyncio import Redis

from devstack.local import RedisServer
from jobs import keys
from jobs.model import JobError, JobStatus
from jobs.store import JobStore
from jobs.style_caps import StyleCapLedger
from personalization.caps import Rankings
from personalization.caps_apply import rank
from personalization.orchestrator.rule_based import RuleBasedOrchestrator, ranked_choices
from personalization.style import StyleDNA, parse_style_dna
from pipeline.runner import Personalizer
from tests.support.archetypes import ARCHETYPES

RAW = tomllib.loads((Path(__file__).resolve().parents[3] / "collections" / "default.toml").read_text())
PERSONALIZER = Personalizer(history=cast(Any, None), registry=cast(Any, None), orchestrator=RuleBasedOrchestrator())


def capped_collection(collection_id: str, caps: dict[str, Any]) -> StyleDNA:
    raw = copy.deepcopy(RAW)
    raw["id"] = collection_id
    raw["style"]["caps"] = caps
    return parse_style_dna(raw, f"{collection_id}.toml")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("caps") / "redis") as server:
        yield server.url


async def new_jobs(jobs: JobStore, collection: str, count: int) -> list[str]:
    accepted = [
        await jobs.accept(
            tenant="t", recipient=Account.create().address, collection=collection, context={}, idempotency_key=None
        )
        for _ in range(count)
    ]
    return [result.job_id for result in accepted]


def whale(n: int) -> Any:
    return replace(ARCHETYPES["whale"], tx_count=30 + n)  # fifty whales, each its own features


async def test_fifty_concurrent_mints_against_a_cap_of_five_give_exactly_five(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        jobs, ledger = JobStore(redis), StyleCapLedger(redis)
        dna = capped_collection("capped_fifty", {"palette": {"bullion": {"max": 5}}})
        job_ids = await new_jobs(jobs, dna.collection_id, 50)

        def reserve_for(job_id: str) -> Any:
            async def reserve(rankings: Rankings) -> Mapping[str, str]:
                got = await ledger.reserve(job_id, dna, rankings)
                assert got is not None
                return got

            return reserve

        # Every one of them a whale, all styled at once: the pipeline's style stage, fifty times.
        styled = await asyncio.gather(
            *(PERSONALIZER.capped_style(whale(n), dna, reserve_for(job_id)) for n, job_id in enumerate(job_ids))
        )
        palettes = [orchestration.params.palette for orchestration in styled]
        assert palettes.count("bullion") == 5
        for n, orchestration in enumerate(styled):
            next_best = ranked_choices(whale(n), dna)["palette"][1]
            if orchestration.params.palette == "bullion":
                assert "caps" not in orchestration.provenance
            else:  # the wallet's own recorded next-best, everything else as the orchestrator chose
                assert orchestration.params.palette == next_best
                assert orchestration.provenance["caps"] == [
                    {"field": "palette", "wanted": "bullion", "got": next_best, "cap": {"max": 5}}
                ]
                assert orchestration.params.medium == "oil"
        counts = await ledger.counts(dna.collection_id)
        assert counts["tokens"] == 50
        assert counts["palette=bullion"] == 5
        assert sum(count for name, count in counts.items() if name.startswith("palette=")) == 50
        assert keys.style_caps_key(dna.collection_id) == "pm:caps:capped_fifty"

        # Idempotent per job: a retry (here ranking otherwise) gets what its job holds, counting nothing.
        holder = job_ids[palettes.index("bullion")]
        refused = job_ids[palettes.index(next(p for p in palettes if p != "bullion"))]
        other_order: Rankings = {"palette": ("bullion", "dawn", "arcade"), "medium": ("ink",)}
        assert (await ledger.reserve(holder, dna, other_order) or {})["palette"] == "bullion"
        again = await ledger.reserve(refused, dna, other_order)
        assert again is not None
        assert again["palette"] == palettes[job_ids.index(refused)]
        assert again["medium"] == "oil"
        assert await ledger.counts(dna.collection_id) == counts

        # A failed job gives its reservation back, once; the next mint may take bullion again.
        await jobs.fail(holder, JobError("render_failed", "bad"))
        await jobs.fail(holder, JobError("render_failed", "again"))
        after = await ledger.counts(dna.collection_id)
        assert (after["tokens"], after["palette=bullion"], after["medium=oil"]) == (49, 4, 49)
        late = await new_jobs(jobs, dna.collection_id, 2)
        rankings = rank((await PERSONALIZER.style(whale(99), dna)).params, ranked_choices(whale(99), dna))
        assert (await ledger.reserve(late[0], dna, rankings) or {})["palette"] == "bullion"
        assert (await ledger.reserve(late[1], dna, rankings) or {})["palette"] == rankings["palette"][1]
        # A confirmed job keeps its reservation whatever a late failure says; an ended job reserves nothing.
        await jobs.set_status(late[0], JobStatus.CONFIRMED)
        await jobs.fail(late[0], JobError("internal_error", "a late attempt"))
        assert (await ledger.counts(dna.collection_id))["palette=bullion"] == 5
        assert await ledger.reserve(holder, dna, rankings) is None
        # An expired (collector-paid, never sent) job gives its reservation back too.
        await jobs.expire(late[1], "the voucher's deadline passed")
        assert (await ledger.counts(dna.collection_id))["tokens"] == 50
    finally:
        await redis.aclose()


async def test_a_preview_looks_without_counting_and_a_mint_with_its_id_takes_exactly_that(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        jobs, ledger = JobStore(redis), StyleCapLedger(redis)
        dna = capped_collection("capped_exact", {"palette": {"bullion": {"max": 1}}})
        wants: Rankings = {
            "palette": ("bullion", "dawn"),
            "medium": ("oil",),
            "motif": ("rings",),
            "mood": ("opulent",),
        }
        assert (await ledger.peek(dna, wants))["palette"] == "bullion"
        assert await ledger.counts(dna.collection_id) == {}  # looking counts nothing
        first, second = await new_jobs(jobs, dna.collection_id, 2)
        params = replace((await PERSONALIZER.style(ARCHETYPES["whale"], dna)).params, palette="bullion")
        assert await ledger.reserve_exact(first, dna, params) is None
        assert (await ledger.peek(dna, wants))["palette"] == "dawn"  # full now: the next-best
        # The cap filled since the preview: nothing reserved, the field named.
        assert await ledger.reserve_exact(second, dna, params) == "palette"
        assert (await ledger.counts(dna.collection_id))["tokens"] == 1
        assert await redis.hget(keys.job_key(second), "style_caps") is None
    finally:
        await redis.aclose()


async def test_a_share_cap_in_redis_follows_the_stated_rule(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        jobs, ledger = JobStore(redis), StyleCapLedger(redis)
        dna = capped_collection("capped_share", {"palette": {"bullion": {"share": 0.02}}})
        cap = dna.caps.cap_of("palette", "bullion")
        assert cap is not None
        wants: Rankings = {"palette": ("bullion", "dawn")}
        taken = 0
        for tokens, job_id in enumerate(await new_jobs(jobs, dna.collection_id, 160), start=1):
            got = await ledger.reserve(job_id, dna, wants)
            expected = "bullion" if taken < cap.limit(tokens) else "dawn"
            assert got == {"palette": expected}, tokens
            taken += expected == "bullion"
        assert taken == 3  # one of the first 50, the second at token 100, the third at 150
    finally:
        await redis.aclose()
