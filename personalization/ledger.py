"""A wallet's history folded into counts that a newer block can extend: the incremental cache's unit.

`HistorySummary` (what a profile reads) is a projection of a `Ledger`. The ledger also
keeps what a merge needs and a summary drops: the distinct counterparties, the net
balance per NFT token id, the events per block inside the recent window, and the hash
of the block it read. Folding the logs of blocks (B, H] into the ledger at B gives the
ledger a cold read at H gives, field for field (`tests/unit/personalization/test_ledger.py`
folds every split of a history both ways), so a newer head costs only the new range.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import msgspec

from personalization.history import AccountState, FirstActivitySource, Interaction, Transfer, WalletHistory
from personalization.summary import RECENT_EVENTS_KEPT, ActivityKind, ContractActivity, HistorySummary, RecentEvent

LEDGER_VERSION = 2


class Tally(msgspec.Struct, array_like=True):
    """What the wallet did with one contract, for one kind of event, with NFT balances kept."""

    contract: str
    kind: ActivityKind
    transfers_in: int = 0
    transfers_out: int = 0
    transfers_self: int = 0
    interactions: int = 0
    first_block: int = 0
    last_block: int = 0
    # Token id (hex) → net amount in minus out, zero entries dropped (ERC-721 and ERC-1155 only).
    balances: dict[str, int] = msgspec.field(default_factory=dict)

    def touch(self, block: int) -> None:
        if self.events == 1:
            self.first_block = self.last_block = block
        else:
            self.first_block = min(self.first_block, block)
            self.last_block = max(self.last_block, block)

    @property
    def events(self) -> int:
        return self.transfers_in + self.transfers_out + self.transfers_self + self.interactions


class Ledger(msgspec.Struct):
    """Everything the history stage knows about one wallet at one block, in mergeable form."""

    chain_id: int
    address: str
    block_number: int
    block_hash: str
    from_block: int
    balance_wei: int
    nonce: int
    is_contract: bool
    deployed_contracts: list[str]
    first_state_block: int | None
    recent_blocks: int
    tallies: dict[str, Tally] = msgspec.field(default_factory=dict)
    counterparties: list[str] = msgspec.field(default_factory=list)
    active_blocks: int = 0
    first_event_block: int | None = None
    last_event_block: int | None = None
    # The newest RECENT_EVENTS_KEPT events: (block, log index, order, contract, kind, direction).
    recent: list[tuple[int, int, int, str, ActivityKind, str]] = msgspec.field(default_factory=list)
    # (block, events) for the blocks that hold events inside the recent window, oldest first.
    recent_window: list[tuple[int, int]] = msgspec.field(default_factory=list)
    source: str = "rpc"
    deployments_source: str = ""
    version: int = LEDGER_VERSION

    # ---- folding ----------------------------------------------------------------------------

    def fold(self, transfers: Iterable[Transfer], interactions: Iterable[Interaction]) -> None:
        """Add the events of blocks after every block folded so far (callers scan ranges in order)."""
        counterparties = set(self.counterparties)
        blocks: dict[int, int] = {}
        latest: list[tuple[int, int, int, str, ActivityKind, str]] = []
        tallies = self.tallies

        def tally(contract: str, kind: ActivityKind) -> Tally:
            key = f"{contract}:{kind}"
            found = tallies.get(key)
            if found is None:
                found = tallies[key] = Tally(contract, kind)
            return found

        for transfer in transfers:
            entry = tally(transfer.contract, transfer.standard)
            direction = transfer.direction
            if direction == "in":
                entry.transfers_in += 1
            elif direction == "out":
                entry.transfers_out += 1
            else:
                entry.transfers_self += 1
            entry.touch(transfer.block_number)
            blocks[transfer.block_number] = blocks.get(transfer.block_number, 0) + 1
            if direction != "self":
                counterparties.add(transfer.counterparty)
                if transfer.token_id is not None:
                    moved = 1 if transfer.standard == "erc721" else transfer.amount
                    token = hex(transfer.token_id)
                    net = entry.balances.get(token, 0) + (moved if direction == "in" else -moved)
                    if net:
                        entry.balances[token] = net
                    else:
                        entry.balances.pop(token, None)
            latest.append(
                (
                    transfer.block_number,
                    transfer.log_index,
                    len(latest),
                    transfer.contract,
                    transfer.standard,
                    direction,
                )
            )
        for interaction in interactions:
            entry = tally(interaction.contract, "interaction")
            entry.interactions += 1
            entry.touch(interaction.block_number)
            blocks[interaction.block_number] = blocks.get(interaction.block_number, 0) + 1
            latest.append((interaction.block_number, -1, len(latest), interaction.contract, "interaction", ""))

        if blocks:
            low, high = min(blocks), max(blocks)
            self.first_event_block = low if self.first_event_block is None else min(self.first_event_block, low)
            self.last_event_block = high if self.last_event_block is None else max(self.last_event_block, high)
        self.active_blocks += len(blocks)
        self.counterparties = sorted(counterparties)
        # New blocks are later than every folded one, so the new events rank first.
        newest = heapq.nlargest(RECENT_EVENTS_KEPT, latest)
        self.recent = (newest + self.recent)[:RECENT_EVENTS_KEPT]
        self.recent_window.extend(sorted(blocks.items()))
        self._trim_window()

    def _trim_window(self) -> None:
        start = self.block_number - self.recent_blocks + 1
        if self.recent_window and self.recent_window[0][0] < start:
            self.recent_window = [(block, n) for block, n in self.recent_window if block >= start]

    def advance(self, state: AccountState, block_hash: str) -> None:
        """Move to a newer block: the account state read there (the logs are folded apart)."""
        if state.block_number < self.block_number:
            raise ValueError("a ledger only moves forward")
        # Sorted, as a cold read lists them (personalization.deployments.DeploymentScan.contracts).
        self.deployed_contracts = sorted(set(self.deployed_contracts) | set(state.deployed_contracts))
        if self.first_state_block is None:  # found by a read `since` this ledger's account, if at all
            self.first_state_block = state.first_state_block
        self.block_number = state.block_number
        self.block_hash = block_hash
        self.balance_wei = state.balance_wei
        self.nonce = state.nonce
        self.is_contract = state.is_contract
        if state.deployments_source:
            self.deployments_source = state.deployments_source
        self._trim_window()

    # ---- reading ----------------------------------------------------------------------------

    def account(self) -> AccountState:
        """The account as read at this ledger's block: what a read of a newer block starts `since`."""
        return AccountState(
            address=self.address,
            block_number=self.block_number,
            from_block=self.from_block,
            balance_wei=self.balance_wei,
            nonce=self.nonce,
            is_contract=self.is_contract,
            deployed_contracts=tuple(self.deployed_contracts),
            first_state_block=self.first_state_block,
            deployments_source=self.deployments_source,
        )

    @property
    def first_activity(self) -> tuple[int | None, FirstActivitySource]:
        """The earlier of the first state footprint and the first log (as WalletHistory has it)."""
        first_state, first_log = self.first_state_block, self.first_event_block
        if first_state is not None and (first_log is None or first_state <= first_log):
            return first_state, "state"
        if first_log is not None:
            return first_log, "logs"
        return None, "none"

    def summary(self) -> HistorySummary:
        contracts = [
            ContractActivity(
                contract=t.contract,
                kind=t.kind,
                transfers_in=t.transfers_in,
                transfers_out=t.transfers_out,
                transfers_self=t.transfers_self,
                interactions=t.interactions,
                held=sum(1 for amount in t.balances.values() if amount > 0),
                first_block=t.first_block,
                last_block=t.last_block,
            )
            for t in self.tallies.values()
        ]
        contracts.sort(key=lambda c: (-c.events, c.contract, c.kind))
        first, origin = self.first_activity
        start = self.block_number - self.recent_blocks + 1
        return HistorySummary(
            chain_id=self.chain_id,
            address=self.address,
            block_number=self.block_number,
            from_block=self.from_block,
            balance_wei=self.balance_wei,
            nonce=self.nonce,
            is_contract=self.is_contract,
            deployed_contracts=tuple(self.deployed_contracts),
            first_activity_block=first,
            first_activity_source=origin,
            contracts=tuple(contracts),
            distinct_counterparties=len(self.counterparties),
            active_blocks=self.active_blocks,
            first_event_block=self.first_event_block,
            last_event_block=self.last_event_block,
            recent=tuple(
                RecentEvent(block, contract, kind, direction) for block, _, _, contract, kind, direction in self.recent
            ),
            recent_blocks=self.recent_blocks,
            recent_events=sum(n for block, n in self.recent_window if block >= start),
            source=self.source,
            deployments_source=self.deployments_source,
        )


def empty_ledger(state: AccountState, *, chain_id: int, block_hash: str, recent_blocks: int, source: str) -> Ledger:
    """The ledger of an account before any of its logs are folded in."""
    return Ledger(
        chain_id=chain_id,
        address=state.address,
        block_number=state.block_number,
        block_hash=block_hash,
        from_block=state.from_block,
        balance_wei=state.balance_wei,
        nonce=state.nonce,
        is_contract=state.is_contract,
        deployed_contracts=list(state.deployed_contracts),
        first_state_block=state.first_state_block,
        recent_blocks=recent_blocks,
        source=source,
        deployments_source=state.deployments_source,
    )


def ledger_of(history: WalletHistory, *, block_hash: str = "", recent_blocks: int = 50_000) -> Ledger:
    """Fold a whole history (a cold read) into a ledger."""
    state = AccountState(
        address=history.address,
        block_number=history.block_number,
        from_block=history.from_block,
        balance_wei=history.balance_wei,
        nonce=history.nonce,
        is_contract=history.is_contract,
        deployed_contracts=history.deployed_contracts,
        first_state_block=history.first_activity_block if history.first_activity_source == "state" else None,
        deployments_source=history.deployments_source,
    )
    ledger = empty_ledger(
        state, chain_id=history.chain_id, block_hash=block_hash, recent_blocks=recent_blocks, source=history.source
    )
    ledger.fold(history.transfers, history.interactions)
    return ledger


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Ledger)


def encode_ledger(ledger: Ledger) -> bytes:
    return _ENCODER.encode(ledger)


def decode_ledger(raw: bytes) -> Ledger:
    """Raises msgspec.DecodeError (a ValueError) for bytes of another shape or version."""
    ledger = _DECODER.decode(raw)
    if ledger.version != LEDGER_VERSION:
        raise msgspec.DecodeError(f"ledger version {ledger.version} != {LEDGER_VERSION}")
    return ledger


def summarize(history: WalletHistory, *, recent_blocks: int = 50_000) -> HistorySummary:
    """Fold every transfer and interaction into per-(contract, kind) counts; pure."""
    return ledger_of(history, recent_blocks=recent_blocks).summary()
