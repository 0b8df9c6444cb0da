"""Whether a chain has a live minter: the presence key each minter refreshes, and what a waiting job is told."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobs.keys import minter_route_key

ROUTE_TTL_S = 10
"""A route with no minter report this long has no live minter, and its jobs' statuses say so."""


def mark_alive(pipe: Pipeline, route: str, signer: str) -> None:
    """Queue the presence write on `pipe` (the minter's health report, every few seconds)."""
    pipe.set(minter_route_key(route), signer, ex=ROUTE_TTL_S)


async def has_live_minter(redis: Redis, route: str) -> bool:
    """Whether a minter reported for this route (`default` or a chain id) in the last ROUTE_TTL_S seconds."""
    return bool(await redis.exists(minter_route_key(route)))


WAITING_FOR_MINTER = "waiting for a minter"


def waiting_for_minter(chain_label: str) -> str:
    """The status detail of a job queued for a chain whose minter is not running."""
    return f"{WAITING_FOR_MINTER}: none is running for {chain_label}; the mint goes out when one starts"
