"""The summary a profile reads: per-contract counts of a wallet's history, small enough to cache.

A raw history of a busy wallet is megabytes (10,000 transfers take ~3 MB and ~20 ms
to decode); the summary is O(contracts touched) and decodes in well under a
millisecond, which is what makes a cached profile cost no RPC call and ~1 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from personalization.history import FirstActivitySource

ActivityKind = Literal["erc20", "erc721", "erc1155", "interaction"]
RECENT_EVENTS_KEPT = 10
SUMMARY_VERSION = 2


@dataclass(frozen=True)
class ContractActivity:
    """What the wallet did with one contract, for one kind of event."""

    contract: str
    kind: ActivityKind
    transfers_in: int
    transfers_out: int
    transfers_self: int
    interactions: int
    held: int  # ERC-721 tokens, or ERC-1155 token ids, with a positive net balance
    first_block: int
    last_block: int

    @property
    def events(self) -> int:
        return self.transfers_in + self.transfers_out + self.transfers_self + self.interactions


@dataclass(frozen=True)
class RecentEvent:
    """One of the wallet's latest events, newest first."""

    block_number: int
    contract: str
    kind: ActivityKind
    direction: str  # in / out / self, "" for an interaction


@dataclass(frozen=True)
class HistorySummary:
    """A WalletHistory folded into counts; the profile is built from this."""

    chain_id: int
    address: str
    block_number: int
    from_block: int
    balance_wei: int
    nonce: int
    is_contract: bool
    deployed_contracts: tuple[str, ...]
    first_activity_block: int | None
    first_activity_source: FirstActivitySource
    contracts: tuple[ContractActivity, ...]
    distinct_counterparties: int
    active_blocks: int
    first_event_block: int | None
    last_event_block: int | None
    recent: tuple[RecentEvent, ...]
    recent_blocks: int
    recent_events: int
    source: str = "rpc"
    # How deployments were found: "create" (eth_getCode at CREATE addresses only), "trace_filter" or
    # "debug_traceTransaction" (factory and CREATE2 deployments too); "" when the wallet sent nothing.
    deployments_source: str = ""
    version: int = SUMMARY_VERSION


# JSON, not msgpack: a balance over 2**64 wei (18.4 ETH) or a uint256 amount fits JSON, not msgpack ints.
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(HistorySummary)


def encode_summary(summary: HistorySummary) -> bytes:
    return _ENCODER.encode(summary)


def decode_summary(raw: bytes) -> HistorySummary:
    """Raises msgspec.DecodeError (a ValueError) for bytes of another shape or version."""
    summary = _DECODER.decode(raw)
    if summary.version != SUMMARY_VERSION:
        raise msgspec.DecodeError(f"summary version {summary.version} != {SUMMARY_VERSION}")
    return summary
