"""What the minter is told (MinterConfig) and what it tells back: receipts, progress, health, counters, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal

from chain.errors import ChainError
from chain.fees import FeePolicy


class MintTimeout(ChainError):
    """A mint did not finish in time; it is still tracked, and a retry resumes from the chain."""

    code: ClassVar[str] = "mint_timeout"


class SendRejected(ChainError):
    """The node refused a request's transaction repeatedly for a reason no retry fixed."""

    code: ClassVar[str] = "send_rejected"


class RequestIdReused(ChainError):
    """The chain's token for this request id was minted to another recipient or with other metadata.

    The request id was reused for a different request (an idempotency key used again after its
    record expired): the token belongs to the earlier request, so this one must not claim it.
    """

    code: ClassVar[str] = "request_id_reused"


class MinterStopped(ChainError):
    """The minter stopped before this request finished; another minter resumes it."""

    code: ClassVar[str] = "minter_stopped"


@dataclass(frozen=True)
class MintReceipt:
    """A confirmed token: where it is and how it got there."""

    request_id: bytes
    token_id: int
    recipient: str
    tx_hash: str
    block_number: int
    gas_used: int | None
    """This token's share of its transaction's gas (None when found already minted)."""
    already_minted: bool
    batch_size: int = 1


@dataclass(frozen=True)
class MintProgress:
    """A step a request took that its caller may want to show (status detail, saved tx hash)."""

    state: Literal["waiting", "sent", "mined", "requeued", "resumed"]
    detail: str
    tx_hash: str | None = None


ProgressListener = Callable[[MintProgress], Awaitable[None]]


@dataclass(frozen=True)
class MinterConfig:
    """Knobs of the minter; the service builds this from its settings."""

    confirmations: int = 1
    """Blocks a mint must be buried under before it counts (1 = mined)."""
    poll_s: float = 0.05
    """How often the confirmer reads the chain head and the signer's nonce."""
    gas_budget: int = 15_000_000
    """Gas per mintBatch transaction; half a 30M block leaves room for everybody else."""
    max_batch: int = 200
    linger_s: float = 0.01
    """How long a sender waits for more requests to share a transaction while others are in flight."""
    max_unmined: int = 16
    """Signed transactions not yet mined before new batches wait (bounds what a stall can strand)."""
    builders: int = 2
    """Batches prepared concurrently (token checks and gas estimates overlap the previous send)."""
    stall_s: float = 30.0
    """Our nonce has not moved for this long while a transaction waits: replace it with a bumped fee."""
    stall_blocks: int = 3
    """...or for this many new blocks."""
    missing_grace_s: float = 1.0
    """A sent transaction the node does not count as pending for this long is looked up and rebroadcast."""
    fees: FeePolicy = field(default_factory=FeePolicy)
    max_fee_wait_s: float = 600.0
    """An unsent request waits this long for fees to fall under the ceiling, then fails `fee_ceiling`."""
    fee_recheck_s: float = 1.0
    low_balance_wei: int = 10**17
    """Below this signer balance the minter reports low balance (health + log) before sends fail."""
    balance_check_s: float = 5.0
    max_attempts: int = 3
    """Reverted or rejected sends of one request before it fails."""
    gas_margin: float = 1.05
    """A batch's gas limit is its estimate times this (+20,000); blocks admit transactions by their limit."""
    logs_from_block: int = 0
    """Where to start looking for Minted events of requests found already minted (the deployment block)."""


@dataclass
class MinterStats:
    """Counters since start; exported as metrics."""

    requests: int = 0
    minted: int = 0
    already_minted: int = 0
    failed: int = 0
    txs_sent: int = 0
    broadcasts: int = 0
    rebroadcasts: int = 0
    replacements: int = 0
    fillers: int = 0
    nonce_errors: int = 0
    nonce_gaps: int = 0
    displaced: int = 0
    reverted_txs: int = 0
    skipped: int = 0
    reorgs: int = 0
    stalls: int = 0
    fee_waits: int = 0
    send_rejections: int = 0
    low_balance_alerts: int = 0
    loop_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {item.name: int(getattr(self, item.name)) for item in fields(self)}


@dataclass(frozen=True)
class MinterHealth:
    """A snapshot for health endpoints and metrics."""

    signer: str
    running: bool
    balance_wei: int | None
    low_balance: bool
    head: int | None
    next_nonce: int | None
    pending_requests: int
    in_flight_txs: int
    unmined_txs: int
    oldest_unmined_s: float | None
    fee_wait: str | None
    counters: dict[str, int]
