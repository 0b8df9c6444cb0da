"""The one state every stage of the minter shares: requests, transactions in flight, what was seen of the chain."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chain.batcher import GasModel
from chain.contract import PersonaMint
from chain.errors import ChainError
from chain.fees import FeeCeilingExceeded, Fees
from chain.journal import FenceLost, MintJournal
from chain.minter.config import MinterConfig, MinterStats, MintProgress, MintReceipt, ProgressListener
from chain.nonce import NonceBook
from chain.rpc import JsonRpc
from chain.signers import Signer

log = logging.getLogger("personamint.minter")

# Receipts of finished requests kept for callers that ask again (a retried job, say).
_RESOLVED_MEMORY = 100_000


@dataclass(eq=False)
class MintRequest:
    """One caller's request as the minter tracks it, from intake until its future is done."""

    request_id: bytes
    recipient: str
    token_uri: str
    contract: str
    """The contract (checksummed) it mints in: a batch is one contract's requests."""
    future: asyncio.Future[MintReceipt]
    listeners: list[ProgressListener] = field(default_factory=list)
    attempts: int = 0
    waiting_since: float | None = None
    nonce: int | None = None
    """The nonce of the live transaction this request is signed into, if any."""


@dataclass(frozen=True)
class Mined:
    """Where one version of a transaction was mined (it can still leave the chain in a reorg)."""

    tx_hash: str
    block_number: int
    block_hash: str
    receipt: dict[str, Any]


@dataclass(eq=False)
class MintTx:
    """One nonce's transaction: its requests, and every signed version of it so far."""

    nonce: int
    requests: list[MintRequest]
    gas: int
    fees: Fees
    data: bytes = b""
    raw: bytes = b""
    hashes: list[str] = field(default_factory=list)
    signed_at: float = 0.0
    sent_at: float = 0.0
    sent_head: int = 0
    mined: Mined | None = None
    consumed_seen_at: float | None = None
    recovering: bool = False
    rejections: int = 0
    fee_blocked: bool = False

    @property
    def filler(self) -> bool:
        return not self.requests

    @property
    def contract(self) -> str | None:
        """The contract its requests mint in (a batch never mixes contracts); None for a filler."""
        return self.requests[0].contract if self.requests else None


class MinterState:
    """The collaborators and the mutable state of one minter, and the moves every stage makes on it.

    Stages (intake, sender, confirmer, recovery) each hold this one object; a request or a
    transaction lives here, not in a stage, so a hand-over between stages is just a call.
    """

    def __init__(
        self,
        rpc: JsonRpc,
        account: Signer,
        contract: PersonaMint,
        config: MinterConfig,
        journal: MintJournal,
        chain_id: int | None,
        contracts: Sequence[PersonaMint] = (),
    ) -> None:
        self.rpc = rpc
        self.account = account
        self.contract = contract
        """The default contract: requests that name none mint here."""
        self.contracts: dict[str, PersonaMint] = {c.address: c for c in (contract, *contracts)}
        """Every contract this signer mints in on this chain (one nonce space for all of them)."""
        self.config = config
        self.journal = journal
        self.chain_id = chain_id
        self.stats = MinterStats()
        self.gas_model = GasModel()
        self.nonce_book: NonceBook | None = None
        self.requests: dict[bytes, MintRequest] = {}
        self.pending: OrderedDict[bytes, MintRequest] = OrderedDict()
        """Requests waiting for a sender, oldest (or requeued) first."""
        self.completing: set[bytes] = set()
        self.resolved: OrderedDict[bytes, tuple[MintReceipt, str, str]] = OrderedDict()
        """Finished requests' receipts, token URIs and contracts they were asked with, newest last."""
        self.txs: dict[int, MintTx] = {}
        self.send_lock = asyncio.Lock()
        """Held from nonce choice (or re-signing) through journal write and broadcast."""
        self.wake = asyncio.Event()
        """Senders: there may be work (new requests, a freed nonce, a requeue)."""
        self.poke = asyncio.Event()
        """Confirmer: look at the chain now rather than at the next poll."""
        self.side_tasks: set[asyncio.Future[Any]] = set()
        self.running = False
        self.fatal: ChainError | None = None
        self.head: int | None = None
        self.latest_nonce = 0
        self.latest_moved_at = 0.0
        self.latest_moved_head = 0
        self.fee_block: FeeCeilingExceeded | None = None
        self.fee_wait_until = 0.0
        self.balance: int | None = None
        self.low_balance = False
        self.balance_checked_at = 0.0
        self.unreachable_since: float | None = None
        """When the confirmer's reads of the chain began failing (None while it answers)."""
        self.unreachable_detail = ""

    @property
    def nonces(self) -> NonceBook:
        assert self.nonce_book is not None, "the minter has not started"
        return self.nonce_book

    @property
    def where(self) -> str:
        """How statuses and logs name this minter's chain."""
        return f"chain {self.chain_id}" if self.chain_id is not None else "the chain"

    def contract_at(self, address: str) -> PersonaMint:
        found = self.contracts.get(address)
        if found is None:
            raise ChainError(f"contract {address} is not one this minter mints in")
        return found

    def unmined(self) -> int:
        return sum(1 for tx in self.txs.values() if tx.mined is None)

    # ---- a request's end -------------------------------------------------------------------

    def new_request(self, request_id: bytes, recipient: str, token_uri: str, contract: str) -> MintRequest:
        future: asyncio.Future[MintReceipt] = asyncio.get_running_loop().create_future()
        # Requests restored from the journal may finish before anyone awaits them.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        request = MintRequest(request_id, recipient, token_uri, contract, future)
        self.requests[request_id] = request
        return request

    def resolve(self, request: MintRequest, receipt: MintReceipt) -> None:
        self.requests.pop(request.request_id, None)
        self.pending.pop(request.request_id, None)
        self.resolved[request.request_id] = (receipt, request.token_uri, request.contract)
        while len(self.resolved) > _RESOLVED_MEMORY:
            self.resolved.popitem(last=False)
        if receipt.already_minted:
            self.stats.already_minted += 1
        else:
            self.stats.minted += 1
        if not request.future.done():
            request.future.set_result(receipt)

    def fail(self, request: MintRequest, error: ChainError) -> None:
        self.requests.pop(request.request_id, None)
        self.pending.pop(request.request_id, None)
        self.stats.failed += 1
        log.warning("mint %s failed: %s (%s)", request.request_id.hex()[:12], error.code, error)
        if not request.future.done():
            request.future.set_exception(error)

    def requeue(self, requests: Sequence[MintRequest], *, front: bool = True) -> None:
        for request in reversed(requests) if front else requests:
            if request.future.done() or request.request_id not in self.requests:
                continue
            carrier = self.txs.get(request.nonce) if request.nonce is not None else None
            if carrier is not None and request in carrier.requests:
                continue  # signed into a live transaction: it must not go out twice
            request.nonce = None
            self.pending[request.request_id] = request
            if front:
                self.pending.move_to_end(request.request_id, last=False)
        self.wake.set()

    def count_attempt(self, requests: Sequence[MintRequest], error: ChainError) -> None:
        """A send of these requests failed for `error`: go again, or fail those out of attempts."""
        retry = []
        for request in requests:
            request.attempts += 1
            if request.attempts >= self.config.max_attempts:
                self.fail(request, error)
            else:
                retry.append(request)
        self.requeue(retry)

    # ---- side work ---------------------------------------------------------------------------

    def notify(self, requests: Sequence[MintRequest], progress: MintProgress) -> None:
        for request in requests:
            for listener in list(request.listeners):
                self.spawn(listener(progress))

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.side_tasks.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Future[Any]) -> None:
        self.side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("minter side task failed: %r", task.exception())

    # ---- alarms ------------------------------------------------------------------------------------

    def low_balance_alarm(self, why: str) -> None:
        self.low_balance = True
        self.stats.low_balance_alerts += 1
        log.error("LOW SIGNER BALANCE: %s: %s; top it up before mints fail", self.account.address, why)

    def lose_fence(self, exc: FenceLost) -> None:
        log.error("lease lost; this minter stops sending: %s", exc)
        self.fatal = exc
        self.running = False
        for request in list(self.requests.values()):
            if not request.future.done():
                request.future.set_exception(exc)
