"""Turn a WalletHistory (+ app context) into WalletProfile features a person would recognise."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from personalization.history import WalletHistory
from personalization.registry import LABELS, ContractRegistry

WEI_PER_ETH = 10**18


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

    @property
    def total_events(self) -> int:
        return self.erc20_transfers + self.erc721_transfers + self.erc1155_transfers + self.interactions

    @property
    def dominant_label(self) -> str | None:
        """The label with the most activity, ties broken by LABELS order; None if unlabelled."""
        best = max(LABELS, key=lambda label: (self.labels.get(label, 0), -LABELS.index(label)))
        return best if self.labels.get(best, 0) > 0 else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["top_contracts"] = [list(pair) for pair in self.top_contracts]
        return data

    def features(self) -> dict[str, Any]:
        """The address-free features: what the style may depend on."""
        data = self.to_dict()
        for key in ("chain_id", "address", "block_number", "first_active_block", "last_active_block"):
            data.pop(key)
        data["top_contracts"] = [count for _, count in self.top_contracts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalletProfile:
        data = dict(data)
        data["top_contracts"] = tuple((str(a), int(n)) for a, n in data.get("top_contracts", ()))
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def build_profile(
    history: WalletHistory, registry: ContractRegistry, context: dict[str, Any] | None = None
) -> WalletProfile:
    """Count, label and summarise; pure and deterministic."""
    by_standard = Counter(t.standard for t in history.transfers)
    by_direction = Counter(t.direction for t in history.transfers)
    contract_activity: Counter[str] = Counter()
    for transfer in history.transfers:
        contract_activity[transfer.contract] += 1
    for interaction in history.interactions:
        contract_activity[interaction.contract] += 1
    labels: Counter[str] = Counter()
    for contract, count in contract_activity.items():
        known = registry.lookup(history.chain_id, contract)
        if known is not None:
            labels[known.label] += count
    if history.deployed_contracts:
        labels["infrastructure"] += len(history.deployed_contracts)

    held: Counter[tuple[str, int]] = Counter()
    for transfer in history.transfers:
        if transfer.standard == "erc721" and transfer.token_id is not None:
            key = (transfer.contract, transfer.token_id)
            if transfer.direction == "in":
                held[key] += 1
            elif transfer.direction == "out":
                held[key] -= 1
    blocks = [t.block_number for t in history.transfers] + [i.block_number for i in history.interactions]
    counterparties = {t.counterparty for t in history.transfers if t.direction != "self"}
    return WalletProfile(
        chain_id=history.chain_id,
        address=history.address,
        block_number=history.block_number,
        balance_eth=round(history.balance_wei / WEI_PER_ETH, 6),
        tx_count=history.nonce,
        is_contract=history.is_contract,
        erc20_transfers=by_standard["erc20"],
        erc721_transfers=by_standard["erc721"],
        erc1155_transfers=by_standard["erc1155"],
        transfers_in=by_direction["in"],
        transfers_out=by_direction["out"],
        interactions=len(history.interactions),
        distinct_contracts=len(contract_activity),
        distinct_counterparties=len(counterparties),
        nfts_held=sum(1 for count in held.values() if count > 0),
        contracts_deployed=len(history.deployed_contracts),
        first_active_block=min(blocks) if blocks else None,
        last_active_block=max(blocks) if blocks else None,
        active_blocks=len(set(blocks)),
        labels={label: labels[label] for label in LABELS if labels[label]},
        top_contracts=tuple(sorted(contract_activity.items(), key=lambda kv: (-kv[1], kv[0]))[:5]),
        context=dict(context or {}),
    )
