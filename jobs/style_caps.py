"""A collection's rarity caps in Redis: a job's capped choices reserved atomically, a preview's read-only look.

The counts live in one hash per collection (jobs/keys.py `style_caps_key`): its live tokens in all
and per `<field>=<value>`, every choice field counted whether capped or not (a cap added later to
another field of the collection starts from true counts). The rule a cap's limit follows is in
personalization/caps.py; the scripts apply it inside Redis, so fifty workers styling at once
never pass a cap. A job's reservation is kept in its own record (`style_caps`): a retried job gets
the same one, and release_cap.lua (JobStore.fail / expire) gives it back exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from jobs import keys, lua
from personalization.caps import Rankings
from personalization.errors import StyleDNAError
from personalization.style import CHOICE_FIELDS, StyleDNA, StyleParams


class StyleCapLedger:
    """Reservations of capped style choices, per collection."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._reserve = lua.register(redis, "style_caps_reserve")
        self._peek = lua.register(redis, "style_caps_peek")

    async def reserve(self, job_id: str, dna: StyleDNA, rankings: Mapping[str, Sequence[str]]) -> dict[str, str] | None:
        """Per field, the first value of its ranking under its cap, counted for this job (once: a
        retry gets what the job holds); None when the job has ended (nothing is reserved)."""
        answer = await self._call_reserve(job_id, dna, rankings)
        if answer is None:
            return None
        if "refused" in answer:  # every value of a field capped and full: parse_style_caps prevents it
            raise StyleDNAError(f"{dna.collection_id}: every {answer['refused']} is at its cap")
        return dict(answer["got"])

    async def reserve_exact(self, job_id: str, dna: StyleDNA, params: StyleParams) -> str | None:
        """Reserve exactly these params' choices (a mint adopting its preview); the first field whose
        value is at its cap now, when one is (nothing is reserved then)."""
        exact: Rankings = {name: (getattr(params, name),) for name in CHOICE_FIELDS}
        answer = await self._call_reserve(job_id, dna, exact)
        if answer is None or "refused" not in answer:
            return None
        return str(answer["refused"])

    async def peek(self, dna: StyleDNA, rankings: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """What a job styled now would reserve, counting nothing (what a preview shows)."""
        raw = await self._peek(keys=[keys.style_caps_key(dna.collection_id)], args=_args(dna, rankings))
        answer: dict[str, Any] = json.loads(raw)
        if "refused" in answer:
            raise StyleDNAError(f"{dna.collection_id}: every {answer['refused']} is at its cap")
        return {str(name): str(value) for name, value in answer.items()}

    async def counts(self, collection: str) -> dict[str, int]:
        """The collection's live tokens: `tokens` and `<field>=<value>` (for operators and tests)."""
        raw: Any = await self.redis.hgetall(keys.style_caps_key(collection))
        return {name.decode(): int(count) for name, count in raw.items()}

    async def _call_reserve(
        self, job_id: str, dna: StyleDNA, rankings: Mapping[str, Sequence[str]]
    ) -> dict[str, Any] | None:
        raw = await self._reserve(
            keys=[keys.job_key(job_id), keys.style_caps_key(dna.collection_id)], args=_args(dna, rankings)
        )
        if isinstance(raw, int):  # 0: the job has ended, or is ending (its slots were given back)
            return None
        answer: dict[str, Any] = json.loads(raw)
        return answer


def _args(dna: StyleDNA, rankings: Mapping[str, Sequence[str]]) -> list[str]:
    return [json.dumps(dna.caps.script_form()), json.dumps({name: list(values) for name, values in rankings.items()})]
