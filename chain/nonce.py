"""The signer's nonces: handed out by the minter alone, reconciled with the chain after any doubt."""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(frozen=True)
class Reconciled:
    """What a comparison with the chain found."""

    consumed: tuple[int, ...]
    """Held nonces the chain has used: some transaction at each was mined."""
    not_pending: tuple[int, ...]
    """Held nonces the node does not count as pending: dropped, or queued behind a gap."""
    gaps: tuple[int, ...]
    """Nonces below `next` that nothing holds and the node does not have: fill them or later sends stall."""
    jumped_to: int | None
    """Set when the chain's pending nonce was ahead of ours (someone else used the key)."""


class NonceBook:
    """Which nonces are held by signed transactions, which are free, and the next unused one.

    Invariant: every nonce in [chain nonce, next) is either held or free. `allocate`
    returns the lowest free nonce first, so a gap left by a rejected send is filled by
    the very next transaction instead of blocking everything signed after it.
    """

    def __init__(self, next_nonce: int) -> None:
        if next_nonce < 0:
            raise ValueError("nonce must be >= 0")
        self._next = next_nonce
        self._free: list[int] = []
        self._held: set[int] = set()

    @property
    def next(self) -> int:
        return self._next

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    @property
    def free(self) -> tuple[int, ...]:
        return tuple(sorted(self._free))

    def blocking_gap(self) -> int | None:
        """The lowest free nonce that has a held nonce above it: later transactions wait for it."""
        if not self._free or not self._held:
            return None
        lowest = self._free[0]
        return lowest if lowest < max(self._held) else None

    def allocate(self) -> int:
        nonce = heapq.heappop(self._free) if self._free else self._take_next()
        self._held.add(nonce)
        return nonce

    def _take_next(self) -> int:
        nonce = self._next
        self._next += 1
        return nonce

    def hold(self, nonce: int) -> None:
        """Mark a nonce held by a transaction signed earlier (restored from the journal)."""
        if nonce in self._free:
            self._free.remove(nonce)
            heapq.heapify(self._free)
        self._held.add(nonce)
        self._next = max(self._next, nonce + 1)

    def release(self, nonce: int) -> None:
        """The transaction at `nonce` was definitively not accepted: the nonce is free again."""
        self._held.discard(nonce)
        if nonce >= self._next or nonce in self._free:
            return
        heapq.heappush(self._free, nonce)
        self._trim()

    def settle(self, nonce: int) -> None:
        """The chain has used `nonce`."""
        self._held.discard(nonce)

    def _trim(self) -> None:
        # Free nonces at the top are simply unused: lower `next` instead of filling them.
        while self._free and self._next - 1 in self._free and self._next - 1 not in self._held:
            self._free.remove(self._next - 1)
            self._next -= 1
        heapq.heapify(self._free)

    def reconcile(self, latest: int, pending: int) -> Reconciled:
        """Compare with the chain: `latest` = mined transaction count, `pending` = count including the pool."""
        pending = max(pending, latest)
        jumped_to = None
        if pending > self._next:
            # Nonces we never signed are in use: another sender shares the key, or a
            # previous process signed without a journal. Step over them.
            jumped_to = pending
            self._next = pending
        # Free nonces the chain or the pool already holds are not free any more.
        self._free = [nonce for nonce in self._free if nonce >= pending]
        heapq.heapify(self._free)
        consumed = tuple(sorted(nonce for nonce in self._held if nonce < latest))
        not_pending = tuple(sorted(nonce for nonce in self._held if nonce >= pending))
        known = self._held | set(self._free)
        gaps = tuple(nonce for nonce in range(pending, self._next) if nonce not in known)
        for nonce in gaps:
            heapq.heappush(self._free, nonce)
        self._trim()
        return Reconciled(consumed=consumed, not_pending=not_pending, gaps=gaps, jumped_to=jumped_to)
