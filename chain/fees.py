"""Fee quotes for EIP-1559 and legacy chains: a ceiling per chain, and bumps to replace a stalled transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chain.errors import ChainError, RpcError
from chain.rpc import JsonRpc, RpcCallError

GWEI = 10**9
# Nodes (geth and most others) refuse a same-nonce replacement unless both fee fields rise
# by at least 10%; 12.5% leaves room for rounding on every implementation we know of.
DEFAULT_BUMP_BPS = 1_250


class FeeCeilingExceeded(ChainError):
    """Fees needed to be included now are above the configured ceiling."""

    code: ClassVar[str] = "fee_ceiling"

    def __init__(self, needed_wei: int, ceiling_wei: int, *, waited_s: float | None = None) -> None:
        self.needed_wei = needed_wei
        self.ceiling_wei = ceiling_wei
        self.waited_s = waited_s
        message = f"fees need {needed_wei / GWEI:.3f} gwei per gas, above the ceiling of {ceiling_wei / GWEI:.3f} gwei"
        if waited_s is not None:
            message += f"; waited {waited_s:.0f}s for them to fall"
        super().__init__(message)


@dataclass(frozen=True)
class FeePolicy:
    """How the minter prices its transactions."""

    ceiling_wei: int | None = None
    """Highest fee per gas ever signed (maxFeePerGas or gasPrice); None: no ceiling."""
    priority_fee_wei: int | None = None
    """Fixed tip; None asks the node (eth_maxPriorityFeePerGas)."""
    base_fee_multiplier: int = 2
    """maxFeePerGas = multiplier x base fee + tip: survives several full blocks of base-fee growth."""
    bump_bps: int = DEFAULT_BUMP_BPS
    """Minimum rise of each fee field for a replacement, in basis points."""
    legacy: bool | None = None
    """Force legacy gasPrice (True) or EIP-1559 (False); None decides from the latest block."""


@dataclass(frozen=True)
class Market:
    """Fee conditions read from the node at one moment."""

    base_fee: int | None
    """Base fee of the next block; None on chains without EIP-1559."""
    priority_fee: int
    gas_price: int


@dataclass(frozen=True)
class Fees:
    """The fee fields of one signed transaction; for legacy, max_fee == priority_fee == gasPrice."""

    max_fee: int
    priority_fee: int
    legacy: bool

    def tx_fields(self) -> dict[str, int]:
        if self.legacy:
            return {"gasPrice": self.max_fee}
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.priority_fee}

    def to_json(self) -> dict[str, Any]:
        return {"max_fee": self.max_fee, "priority_fee": self.priority_fee, "legacy": self.legacy}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Fees:
        return cls(int(value["max_fee"]), int(value["priority_fee"]), bool(value["legacy"]))


def _is_legacy(market: Market, policy: FeePolicy) -> bool:
    return policy.legacy if policy.legacy is not None else market.base_fee is None


def needed_price(market: Market, policy: FeePolicy) -> int:
    """The fee per gas a transaction must offer to be included in the next block."""
    if _is_legacy(market, policy):
        return market.gas_price
    tip = policy.priority_fee_wei if policy.priority_fee_wei is not None else market.priority_fee
    return (market.base_fee or 0) + tip


def quote(market: Market, policy: FeePolicy) -> Fees:
    """Fees for a new transaction; raises FeeCeilingExceeded when inclusion now costs more than the ceiling."""
    needed = needed_price(market, policy)
    ceiling = policy.ceiling_wei
    if ceiling is not None and needed > ceiling:
        raise FeeCeilingExceeded(needed, ceiling)
    if _is_legacy(market, policy):
        return Fees(market.gas_price, market.gas_price, legacy=True)
    tip = policy.priority_fee_wei if policy.priority_fee_wei is not None else market.priority_fee
    max_fee = policy.base_fee_multiplier * (market.base_fee or 0) + tip
    if ceiling is not None:
        max_fee = min(max_fee, ceiling)
    return Fees(max_fee, min(tip, max_fee), legacy=False)


def _raised(value: int, bps: int) -> int:
    # Ceiling division, and at least +1 wei so a zero tip still changes.
    return max(value + 1, -(-value * (10_000 + bps) // 10_000))


def bump(previous: Fees, market: Market, policy: FeePolicy) -> Fees:
    """Fees for a same-nonce replacement: each field up by bump_bps, and at least today's quote.

    Raises FeeCeilingExceeded when the smallest acceptable replacement is above the ceiling.
    """
    ceiling = policy.ceiling_wei
    min_max = _raised(previous.max_fee, policy.bump_bps)
    min_tip = _raised(previous.priority_fee, policy.bump_bps)
    needed = max(needed_price(market, policy), min_max if previous.legacy else 0)
    if ceiling is not None and (min_max > ceiling or needed > ceiling):
        raise FeeCeilingExceeded(max(min_max, needed), ceiling)
    if previous.legacy:
        price = max(min_max, market.gas_price)
        if ceiling is not None:
            price = min(price, ceiling)
        return Fees(price, price, legacy=True)
    tip = policy.priority_fee_wei if policy.priority_fee_wei is not None else market.priority_fee
    tip = max(min_tip, tip)
    max_fee = max(min_max, policy.base_fee_multiplier * (market.base_fee or 0) + tip)
    if ceiling is not None:
        max_fee = min(max_fee, ceiling)
    return Fees(max_fee, min(tip, max_fee), legacy=False)


def underpriced(fees: Fees, market: Market, policy: FeePolicy) -> bool:
    """True when a transaction with these fees cannot be included at today's prices."""
    if fees.legacy:
        return fees.max_fee < market.gas_price
    return fees.max_fee < (market.base_fee or 0)


async def read_market(rpc: JsonRpc) -> Market:
    """Latest base fee, tip and gas price, in one round trip.

    The latest block's base fee, not a prediction of the next one: the multiplier in the
    policy absorbs the growth, and chains differ in how they compute the next base fee.
    """
    latest, tip, price = await rpc.batch_settled(
        [("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", []), ("eth_gasPrice", [])]
    )
    for answer in (latest, price):
        if isinstance(answer, RpcCallError):
            raise answer
    if not isinstance(latest, dict):
        raise RpcError("the node returned no latest block")
    base_fee = int(latest["baseFeePerGas"], 16) if latest.get("baseFeePerGas") else None
    # Legacy chains may not know eth_maxPriorityFeePerGas; the tip is then irrelevant.
    priority = int(tip, 16) if isinstance(tip, str) else 0
    return Market(base_fee=base_fee, priority_fee=priority, gas_price=int(price, 16))
