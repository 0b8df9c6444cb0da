"""Size mintBatch transactions to a gas budget, and isolate the items that make a batch revert."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from chain.errors import ContractRevert, MissingRole

T = TypeVar("T")


@dataclass
class GasModel:
    """Gas per minted item, learned from estimates; starts high so the first batch stays in budget."""

    per_item: int = 220_000
    overhead: int = 30_000

    def items_within(self, budget: int, cap: int) -> int:
        return max(1, min(cap, (budget - self.overhead) // max(1, self.per_item)))

    def learn(self, gas: int, items: int) -> None:
        if items <= 0:
            return
        observed = max(1, (gas - self.overhead) // items)
        # Move most of the way to what was seen, but rise faster than fall: an
        # underestimate costs an over-budget batch, an overestimate only a smaller one.
        if observed > self.per_item:
            self.per_item = observed
        else:
            self.per_item = (self.per_item + 3 * observed) // 4


def batch_wide(error: ContractRevert) -> bool:
    """Reverts that no single item causes: splitting the batch cannot help."""
    return isinstance(error, MissingRole)


async def split_by_estimate(
    items: Sequence[T],
    estimate: Callable[[Sequence[T]], Awaitable[int]],
) -> tuple[list[tuple[list[T], int]], list[tuple[T, ContractRevert]]]:
    """Estimate gas for `items` as one batch; if it reverts, halve until each reverting item stands alone.

    Returns (batches that estimate fine with their gas, items that revert on their own
    with the decoded error). One bad item costs O(log n) extra estimates and sinks nobody.
    Batch-wide reverts (the signer lost its role) propagate.
    """
    good: list[tuple[list[T], int]] = []
    bad: list[tuple[T, ContractRevert]] = []
    stack: list[list[T]] = [list(items)] if items else []
    while stack:
        group = stack.pop()
        try:
            gas = await estimate(group)
        except ContractRevert as error:
            if batch_wide(error):
                raise
            if len(group) == 1:
                bad.append((group[0], error))
                continue
            middle = len(group) // 2
            # Pushed in reverse so the first half is tried first and keeps arrival order.
            stack.append(group[middle:])
            stack.append(group[:middle])
            continue
        good.append((group, gas))
    return good, bad
