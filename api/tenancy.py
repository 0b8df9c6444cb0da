"""What one caller may make the service spend: session mints per wallet and daily mint budgets.

A SIWE session mints to its own wallet at the service's gas, so any fresh wallet would otherwise
mint to itself without end: a session gets at most the collection's session allowance
(`[sessions] mints_per_wallet`, else PERSONAMINT_SESSION_MINTS_PER_WALLET) per wallet. It is
counted by the per-wallet cap counter (a session's tenant is its wallet), so a failed mint gives
its slot back. Daily budgets bound the mints (the gas) one API-key tenant, or all sessions
together, may have accepted per UTC day; accept.lua checks and charges them in the same step as
the job's creation, so a replayed request never spends and a refused one never counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.auth import Caller
from api.errors import ApiError
from config.clients import Core
from jobs.store import AcceptResult, DailyBudget

# Every SIWE session shares one daily budget: a new wallet costs nothing to make.
SESSIONS_BUDGET = "sessions"


@dataclass(frozen=True)
class MintLimits:
    cap: int  # what accept.lua's per-wallet cap checks (0: none)
    session_cap: int | None  # the session allowance, for a session
    budget: DailyBudget | None


def mint_limits(core: Core, caller: Caller, collection: str) -> MintLimits:
    """The cap and budget one mint by this caller in this collection is held to; 403 when sessions may not mint."""
    settings = core.settings
    cap = core.wallet_caps.get(collection, 0)
    if caller.address is None:
        mints = settings.tenant_daily_mint_budgets.get(caller.tenant, settings.tenant_daily_mint_budget)
        return MintLimits(cap, None, DailyBudget(f"tenant:{caller.tenant}", mints) if mints else None)
    allowance = core.session_mint_caps.get(collection, settings.session_mints_per_wallet)
    if allowance == 0:
        raise ApiError(
            403,
            "session_mint_limit",
            f"a wallet session may not mint in collection {collection!r}; mint through an API key",
            limit=0,
        )
    mints = settings.session_daily_mint_budget
    return MintLimits(
        allowance if cap == 0 else min(cap, allowance),
        allowance,
        DailyBudget(SESSIONS_BUDGET, mints) if mints else None,
    )


def refuse_over_limit(accepted: AcceptResult, limits: MintLimits, collection: str) -> None:
    """The session-allowance and daily-budget refusals (other outcomes are the caller's to map)."""
    if accepted.outcome == "cap_reached" and limits.session_cap is not None and accepted.cap == limits.session_cap:
        raise ApiError(
            403,
            "session_mint_limit",
            f"a wallet session may mint at most {accepted.cap} in collection {collection!r}",
            limit=accepted.cap,
        )
    if accepted.outcome == "budget_spent":
        retry = max(1, int(accepted.retry_after_s + 0.999))
        raise ApiError(
            429,
            "tenant_daily_budget",
            f"this caller's daily mint budget ({accepted.cap}) is spent; it renews at 00:00 UTC",
            headers={"Retry-After": str(retry)},
            budget=accepted.cap,
            retry_after_s=round(accepted.retry_after_s, 3),
        )
