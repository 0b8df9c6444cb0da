"""Turn a WalletHistory (+ app context) into WalletProfile features a person would recognise."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from personalization.history import WalletHistory
from personalization.ledger import summarize
from personalization.registry import LABELS, ContractRegistry
from personalization.summary import HistorySummary

WEI_PER_ETH = 10**18
FLOW_KEYS = tuple(
    f"{standard}_{direction}" for standard in ("erc20", "erc721", "erc1155") for direction in ("in", "out")
)
_PAIR_FIELDS = ("top_contracts", "top_collections", "top_tokens")


@dataclass(frozen=True)
class WalletProfile:
    """Features of one wallet at one block; the orchestrator's only input besides the DNA."""

    chain_id: int
    address: str
    block_number: int
    balance_eth: float
    tx_count: int
    is_contract: bool
    erc20_transfers: int
    erc721_transfers: int
    erc1155_transfers: int
    transfers_in: int
    transfers_out: int
    interactions: int
    distinct_contracts: int
    distinct_counterparties: int
    nfts_held: int
    contracts_deployed: int
    first_active_block: int | None
    last_active_block: int | None
    active_blocks: int
    labels: dict[str, int] = field(default_factory=dict)
    top_contracts: tuple[tuple[str, int], ...] = ()
    context: dict[str, Any] = field(default_factory=dict)
    # Added with the history rework; defaults keep profiles saved before it loadable.
    items_held: int = 0  # ERC-1155 token ids with a positive balance
    first_activity_block: int | None = None  # from historical state where kept, else the first log
    recent_events: int = 0  # events in the history's recent window (see HistorySummary.recent_blocks)
    flows: dict[str, int] = field(default_factory=dict)  # erc20_in, erc20_out, erc721_in, ...
    top_collections: tuple[tuple[str, int], ...] = ()  # NFT contracts (721/1155) by transfers
    top_tokens: tuple[tuple[str, int], ...] = ()  # ERC-20 contracts by transfers

    @property
    def log_events(self) -> int:
        """What the wallet's logs show: token transfers and contract interactions."""
        return self.erc20_transfers + self.erc721_transfers + self.erc1155_transfers + self.interactions

    @property
    def total_events(self) -> int:
        """Token transfers + contract interactions + transactions sent: a wallet that only moves
        plain ETH is active too."""
        return self.log_events + self.tx_count

    @property
    def dominant_label(self) -> str | None:
        """The label with the most activity, ties broken by LABELS order; None if unlabelled."""
        best = max(LABELS, key=lambda label: (self.labels.get(label, 0), -LABELS.index(label)))
        return best if self.labels.get(best, 0) > 0 else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in _PAIR_FIELDS:
            data[name] = [list(pair) for pair in getattr(self, name)]
        return data

    def features(self) -> dict[str, Any]:
        """The address-free features: what the style may depend on."""
        data = self.to_dict()
        for key in (
            "chain_id",
            "address",
            "block_number",
            "first_active_block",
            "last_active_block",
            "first_activity_block",
            # Counted back from the head: an idle wallet's falls as the chain grows, so it may be
            # shown (GET /v1/profiles) but never shapes the style.
            "recent_events",
        ):
            data.pop(key)
        for name in _PAIR_FIELDS:
            data[name] = [count for _, count in getattr(self, name)]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalletProfile:
        data = dict(data)
        for name in _PAIR_FIELDS:
            data[name] = tuple((str(a), int(n)) for a, n in data.get(name, ()))
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def build_profile(
    history: WalletHistory | HistorySummary,
    registry: ContractRegistry,
    context: dict[str, Any] | None = None,
) -> WalletProfile:
    """Count, label and summarise; pure and deterministic. Takes a raw history or its summary."""
    summary = history if isinstance(history, HistorySummary) else summarize(history)
    by_kind: Counter[str] = Counter()
    by_direction: Counter[str] = Counter()
    flows: Counter[str] = Counter()
    contract_activity: Counter[str] = Counter()
    collections: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    nfts_held = items_held = 0
    for activity in summary.contracts:
        contract_activity[activity.contract] += activity.events
        if activity.kind == "interaction":
            by_kind["interaction"] += activity.interactions
            continue
        moved = activity.transfers_in + activity.transfers_out + activity.transfers_self
        by_kind[activity.kind] += moved
        by_direction["in"] += activity.transfers_in
        by_direction["out"] += activity.transfers_out
        flows[f"{activity.kind}_in"] += activity.transfers_in
        flows[f"{activity.kind}_out"] += activity.transfers_out
        if activity.kind == "erc20":
            tokens[activity.contract] += moved
        else:
            collections[activity.contract] += moved
        if activity.kind == "erc721":
            nfts_held += activity.held
        else:
            items_held += activity.held if activity.kind == "erc1155" else 0
    labels: Counter[str] = Counter()
    for contract, count in contract_activity.items():
        known = registry.lookup(summary.chain_id, contract)
        if known is not None:
            labels[known.label] += count
    if summary.deployed_contracts:
        labels["infrastructure"] += len(summary.deployed_contracts)
    return WalletProfile(
        chain_id=summary.chain_id,
        address=summary.address,
        block_number=summary.block_number,
        balance_eth=round(summary.balance_wei / WEI_PER_ETH, 6),
        tx_count=summary.nonce,
        is_contract=summary.is_contract,
        erc20_transfers=by_kind["erc20"],
        erc721_transfers=by_kind["erc721"],
        erc1155_transfers=by_kind["erc1155"],
        transfers_in=by_direction["in"],
        transfers_out=by_direction["out"],
        interactions=by_kind["interaction"],
        distinct_contracts=len(contract_activity),
        distinct_counterparties=summary.distinct_counterparties,
        nfts_held=nfts_held,
        contracts_deployed=len(summary.deployed_contracts),
        first_active_block=summary.first_event_block,
        last_active_block=summary.last_event_block,
        active_blocks=summary.active_blocks,
        labels={label: labels[label] for label in LABELS if labels[label]},
        top_contracts=_top(contract_activity),
        context=dict(context or {}),
        items_held=items_held,
        first_activity_block=summary.first_activity_block,
        recent_events=summary.recent_events,
        flows={key: flows[key] for key in FLOW_KEYS},
        top_collections=_top(collections),
        top_tokens=_top(tokens),
    )


def _top(counts: Counter[str], keep: int = 5) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])
