"""Mint from one hot signer: batch concurrent requests, own the nonce, pipeline sends, confirm, recover."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.batcher import GasModel, split_by_estimate
from chain.contract import PersonaMint, decode_revert
from chain.errors import ChainError, ContractRevert, InsufficientFunds, RpcError
from chain.fees import FeeCeilingExceeded, FeePolicy, Fees, bump, quote, read_market, underpriced
from chain.journal import FenceLost, JournalItem, MemoryJournal, MintJournal, TxRecord
from chain.nonce import NonceBook
from chain.rpc import JsonRpc, RpcCallError
from chain.signers import LocalSigner, Signer

log = logging.getLogger("personamint.minter")

MINTED_TOPIC = "0x" + keccak(text="Minted(bytes32,uint256,address)").hex()
_TOKEN_ID_OF = function_signature_to_4byte_selector("tokenIdOf(bytes32)")
_FILLER_GAS = 21_000
# Per-batch JSON-RPC request size: big enough to amortise a round trip, small enough for providers.
_RPC_CHUNK = 200
_RESOLVED_MEMORY = 100_000

SendOutcome = Literal["accepted", "unknown", "rejected"]


class MintTimeout(ChainError):
    """A mint did not finish in time; it is still tracked, and a retry resumes from the chain."""

    code: ClassVar[str] = "mint_timeout"


class SendRejected(ChainError):
    """The node refused a request's transaction repeatedly for a reason no retry fixed."""

    code: ClassVar[str] = "send_rejected"


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

    state: Literal["waiting", "sent", "mined", "requeued"]
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
    gas_margin: float = 1.15
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


@dataclass(eq=False)
class _Request:
    request_id: bytes
    recipient: str
    token_uri: str
    future: asyncio.Future[MintReceipt]
    listeners: list[ProgressListener] = field(default_factory=list)
    attempts: int = 0
    waiting_since: float | None = None
    nonce: int | None = None


@dataclass(frozen=True)
class _Mined:
    tx_hash: str
    block_number: int
    block_hash: str
    receipt: dict[str, Any]


@dataclass(eq=False)
class _Tx:
    nonce: int
    requests: list[_Request]
    gas: int
    fees: Fees
    data: bytes = b""
    raw: bytes = b""
    hashes: list[str] = field(default_factory=list)
    signed_at: float = 0.0
    sent_at: float = 0.0
    sent_head: int = 0
    mined: _Mined | None = None
    consumed_seen_at: float | None = None
    recovering: bool = False
    rejections: int = 0
    fee_blocked: bool = False

    @property
    def filler(self) -> bool:
        return not self.requests


def classify_send_error(message: str) -> str:
    """What a node meant by refusing eth_sendRawTransaction, from its message (nodes differ in wording)."""
    text = message.lower()
    if any(hint in text for hint in ("already known", "already imported", "known transaction", "already exists")):
        return "known"
    if "nonce too low" in text or "nonce is too low" in text or "oldnonce" in text:
        return "nonce_low"
    if "nonce too high" in text or "nonce gap" in text:
        return "nonce_high"
    if "replacement" in text and ("underpriced" in text or "fee too low" in text):
        return "replacement"
    if "insufficient funds" in text:
        return "funds"
    if any(hint in text for hint in ("base fee", "underpriced", "fee cap", "gas price too low", "feecap")):
        return "fee"
    return "other"


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class Minter:
    """One per (chain, signer): callers `await mint(...)`; sender and confirmer tasks do the rest.

    Exactly once rests on three rules: the chain is asked (tokenIdOf) before any request is
    signed into a new transaction; every signed version is journaled before it is broadcast;
    and a request moves to another nonce only once its old nonce is provably used by a
    transaction that did not mint it (or was definitively refused by the node).
    """

    def __init__(
        self,
        rpc: JsonRpc,
        account: LocalAccount | Signer,
        contract: PersonaMint,
        config: MinterConfig | None = None,
        *,
        journal: MintJournal | None = None,
        chain_id: int | None = None,
    ) -> None:
        self.rpc = rpc
        # Any Signer works (keystore, remote HTTP signer); a bare eth-account key is wrapped.
        self.account: Signer = LocalSigner(account, source="account") if isinstance(account, LocalAccount) else account
        self.contract = contract
        self.config = config or MinterConfig()
        self.journal: MintJournal = journal if journal is not None else MemoryJournal()
        self.chain_id = chain_id
        self.stats = MinterStats()
        self.gas_model = GasModel()
        self._nonces: NonceBook | None = None
        self._requests: dict[bytes, _Request] = {}
        self._pending: OrderedDict[bytes, _Request] = OrderedDict()
        self._completing: set[bytes] = set()
        self._resolved: OrderedDict[bytes, MintReceipt] = OrderedDict()
        self._txs: dict[int, _Tx] = {}
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._poke = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Future[Any]] = set()
        self._running = False
        self._fatal: ChainError | None = None
        self._head: int | None = None
        self._latest_nonce = 0
        self._latest_moved_at = 0.0
        self._latest_moved_head = 0
        self._fee_block: FeeCeilingExceeded | None = None
        self._fee_wait_until = 0.0
        self._balance: int | None = None
        self._low_balance = False
        self._balance_checked_at = 0.0

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore journaled transactions, sync the nonce with the chain, start the loops."""
        if self._running:
            return
        if self.chain_id is None:
            self.chain_id = _int(await self.rpc.call("eth_chainId"))
        head, latest, pending = await self._chain_counts()
        self._head = head
        self._latest_nonce = latest
        self._latest_moved_at = time.monotonic()
        self._latest_moved_head = head
        self._nonces = NonceBook(pending)
        for record in await self.journal.load():
            self._restore(record)
        if self._txs:
            log.info("restored %d unconfirmed transactions from the journal", len(self._txs))
        self._running = True
        loop_tasks = [self._builder_loop(index) for index in range(self.config.builders)]
        self._tasks = [asyncio.create_task(coro) for coro in [*loop_tasks, self._confirmer_loop()]]

    async def stop(self) -> None:
        """Stop the loops. Unconfirmed transactions stay in the journal for the next minter."""
        self._running = False
        for task in [*self._tasks, *self._side_tasks]:
            task.cancel()
        for task in [*self._tasks, *self._side_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        error = self._fatal or MinterStopped("the minter stopped; the request resumes on restart")
        for request in list(self._requests.values()):
            if not request.future.done():
                request.future.set_exception(error)

    def _restore(self, record: TxRecord) -> None:
        assert self._nonces is not None
        requests = []
        for item in record.items:
            request = self._requests.get(item.request_id) or self._new_request(
                item.request_id, item.recipient, item.token_uri
            )
            request.nonce = record.nonce
            requests.append(request)
        tx = _Tx(nonce=record.nonce, requests=requests, gas=record.gas, fees=record.fees)
        tx.data = self._call_data(requests) if requests else b""
        tx.raw = record.raw
        tx.hashes = list(record.hashes)
        tx.signed_at = record.signed_at
        # Not known to be sent: the confirmer looks it up and rebroadcasts at once if absent.
        tx.sent_at = 0.0
        self._txs[record.nonce] = tx
        self._nonces.hold(record.nonce)

    # ---- public API --------------------------------------------------------------------------

    async def mint(
        self,
        request_id: bytes,
        recipient: str,
        token_uri: str,
        *,
        on_progress: ProgressListener | None = None,
    ) -> MintReceipt:
        """Mint once per request_id and wait until confirmed; safe to call again after any crash."""
        if self._fatal is not None:
            raise self._fatal
        if not self._running:
            raise MinterStopped("the minter is not running")
        done = self._resolved.get(request_id)
        if done is not None:
            return done
        request = self._requests.get(request_id)
        if request is None:
            request = self._new_request(request_id, to_checksum_address(recipient), token_uri)
            self.stats.requests += 1
            self._pending[request_id] = request
            self._wake.set()
        if on_progress is not None:
            request.listeners.append(on_progress)
        try:
            return await asyncio.shield(request.future)
        finally:
            if on_progress is not None and on_progress in request.listeners:
                request.listeners.remove(on_progress)

    def health(self) -> MinterHealth:
        now = time.monotonic()
        unmined = [tx for tx in self._txs.values() if tx.mined is None]
        oldest = min((tx.sent_at for tx in unmined if tx.sent_at), default=None)
        return MinterHealth(
            signer=self.account.address,
            running=self._running,
            balance_wei=self._balance,
            low_balance=self._low_balance,
            head=self._head,
            next_nonce=self._nonces.next if self._nonces else None,
            pending_requests=len(self._pending),
            in_flight_txs=len(self._txs),
            unmined_txs=len(unmined),
            oldest_unmined_s=None if oldest is None else round(now - oldest, 3),
            fee_wait=str(self._fee_block) if self._fee_block else None,
            counters={**self.stats.as_dict(), "rpc_retries": self.rpc.stats.retries},
        )

    async def find_existing(self, request_id: bytes) -> MintReceipt | None:
        """The token already minted for request_id, read from the chain (not waiting for depth)."""
        (token_id,) = await self._token_ids([request_id])
        if token_id is None:
            return None
        return await self._existing_receipt(request_id, token_id)

    # ---- requests ------------------------------------------------------------------------------

    def _new_request(self, request_id: bytes, recipient: str, token_uri: str) -> _Request:
        future: asyncio.Future[MintReceipt] = asyncio.get_running_loop().create_future()
        # Requests restored from the journal may finish before anyone awaits them.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        request = _Request(request_id, recipient, token_uri, future)
        self._requests[request_id] = request
        return request

    def _resolve(self, request: _Request, receipt: MintReceipt) -> None:
        self._requests.pop(request.request_id, None)
        self._pending.pop(request.request_id, None)
        self._resolved[request.request_id] = receipt
        while len(self._resolved) > _RESOLVED_MEMORY:
            self._resolved.popitem(last=False)
        if receipt.already_minted:
            self.stats.already_minted += 1
        else:
            self.stats.minted += 1
        if not request.future.done():
            request.future.set_result(receipt)

    def _fail(self, request: _Request, error: ChainError) -> None:
        self._requests.pop(request.request_id, None)
        self._pending.pop(request.request_id, None)
        self.stats.failed += 1
        log.warning("mint %s failed: %s (%s)", request.request_id.hex()[:12], error.code, error)
        if not request.future.done():
            request.future.set_exception(error)

    def _requeue(self, requests: Sequence[_Request], *, front: bool = True) -> None:
        for request in reversed(requests) if front else requests:
            if request.future.done() or request.request_id not in self._requests:
                continue
            carrier = self._txs.get(request.nonce) if request.nonce is not None else None
            if carrier is not None and request in carrier.requests:
                continue  # signed into a live transaction: it must not go out twice
            request.nonce = None
            self._pending[request.request_id] = request
            if front:
                self._pending.move_to_end(request.request_id, last=False)
        self._wake.set()

    def _notify(self, requests: Sequence[_Request], progress: MintProgress) -> None:
        for request in requests:
            for listener in list(request.listeners):
                self._spawn(listener(progress))

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Future[Any]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("minter side task failed: %r", task.exception())

    # ---- chain reads -----------------------------------------------------------------------------

    async def _chain_counts(self) -> tuple[int, int, int]:
        head, latest, pending = await self.rpc.batch_strict(
            [
                ("eth_blockNumber", []),
                ("eth_getTransactionCount", [self.account.address, "latest"]),
                ("eth_getTransactionCount", [self.account.address, "pending"]),
            ]
        )
        return _int(head), _int(latest), _int(pending)

    async def _token_ids(self, request_ids: Sequence[bytes]) -> list[int | None]:
        """tokenIdOf for many requests, batched: the exactly-once check before every send."""
        answers: list[int | None] = []
        for start in range(0, len(request_ids), _RPC_CHUNK):
            chunk = request_ids[start : start + _RPC_CHUNK]
            calls = [
                ("eth_call", [{"to": self.contract.address, "data": "0x" + (_TOKEN_ID_OF + rid).hex()}, "latest"])
                for rid in chunk
            ]
            for result in await self.rpc.batch_strict(calls):
                answers.append(_int(result) or None)
        return answers

    async def _receipts(self, hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        found: list[dict[str, Any] | None] = []
        for start in range(0, len(hashes), _RPC_CHUNK):
            chunk = hashes[start : start + _RPC_CHUNK]
            for result in await self.rpc.batch_strict([("eth_getTransactionReceipt", [h]) for h in chunk]):
                found.append(result if isinstance(result, dict) else None)
        return found

    async def _existing_receipt(self, request_id: bytes, token_id: int) -> MintReceipt:
        logs = await self.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self.contract.address,
                    "topics": [MINTED_TOPIC, "0x" + request_id.hex()],
                    "fromBlock": hex(self.config.logs_from_block),
                    "toBlock": "latest",
                }
            ],
        )
        if not logs:
            raise RpcError(f"token {token_id} has no Minted event yet")
        entry = logs[-1]
        return MintReceipt(
            request_id=request_id,
            token_id=token_id,
            recipient=to_checksum_address("0x" + entry["topics"][3][-40:]),
            tx_hash=entry["transactionHash"],
            block_number=_int(entry["blockNumber"]),
            gas_used=None,
            already_minted=True,
        )

    # ---- the sender ----------------------------------------------------------------------------

    def _unmined(self) -> int:
        return sum(1 for tx in self._txs.values() if tx.mined is None)

    async def _wait_wake(self, wait_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait_s)
        self._wake.clear()

    async def _builder_loop(self, index: int) -> None:
        backoff = 0
        while self._running:
            batch: list[_Request] = []
            try:
                batch = await self._next_batch()
                if batch:
                    await self._build_and_send(batch)
                elif self._nonces is not None and self._nonces.blocking_gap() is not None and not self._pending:
                    await self._fill_gap()
                backoff = 0
            except asyncio.CancelledError:
                self._requeue(batch)
                raise
            except FenceLost as exc:
                self._requeue(batch)
                self._lose_fence(exc)
                return
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch; it goes back
                self._requeue(batch)
                self.stats.loop_errors += 1
                log.warning("sender %d: %s: %s", index, type(exc).__name__, str(exc)[:300])
                await asyncio.sleep(self.rpc.backoff(backoff))
                backoff = min(backoff + 1, 8)

    async def _next_batch(self) -> list[_Request]:
        while self._running:
            now = time.monotonic()
            if self._fee_wait_until > now:
                self._expire_fee_waits(now)
                await asyncio.sleep(min(self._fee_wait_until - now, self.config.poll_s * 4))
                continue
            if self._pending and self._unmined() < self.config.max_unmined:
                break
            if self._nonces is not None and self._nonces.blocking_gap() is not None and not self._pending:
                return []
            await self._wait_wake(self.config.poll_s * 4)
        else:
            return []
        want = self.gas_model.items_within(self.config.gas_budget, self.config.max_batch)
        if len(self._pending) < want and self._txs and self.config.linger_s > 0:
            # Others are in flight anyway: a short wait lets concurrent arrivals share one transaction.
            await asyncio.sleep(self.config.linger_s)
        batch: list[_Request] = []
        while self._pending and len(batch) < want:
            _, request = self._pending.popitem(last=False)
            batch.append(request)
        return batch

    def _expire_fee_waits(self, now: float) -> None:
        block = self._fee_block
        if block is None:
            return
        expired = 0
        for request in list(self._pending.values()):
            if request.waiting_since is not None and now - request.waiting_since > self.config.max_fee_wait_s:
                waited = now - request.waiting_since
                self._fail(request, FeeCeilingExceeded(block.needed_wei, block.ceiling_wei, waited_s=waited))
                expired += 1
        if expired and not self._pending:
            # Everyone who waited has given up. (A batch in a sender's hands is not "nobody": that sender
            # re-blocks or clears this itself after its quote, so an empty queue alone never clears it.)
            self._fee_block = None

    def _hold_for_fees(self, batch: list[_Request], exc: FeeCeilingExceeded) -> None:
        now = time.monotonic()
        if self._fee_block is None:
            log.warning("fees above the ceiling, mints wait: %s", exc)
            self.stats.fee_waits += 1
        self._fee_block = exc
        self._fee_wait_until = now + self.config.fee_recheck_s
        self._requeue(batch)
        newly = []
        for request in self._pending.values():
            if request.waiting_since is None:
                request.waiting_since = now
                newly.append(request)
        self._notify(newly, MintProgress("waiting", f"waiting for fees: {exc}"))
        self._expire_fee_waits(now)

    async def _build_and_send(self, batch: list[_Request]) -> None:
        # Exactly once: never sign a request into a new transaction if the chain has minted it.
        token_ids = await self._token_ids([request.request_id for request in batch])
        fresh = []
        for request, token_id in zip(batch, token_ids, strict=True):
            if token_id is None:
                fresh.append(request)
            else:
                self._complete_existing(request, token_id)
        if not fresh:
            return
        market = await read_market(self.rpc)
        try:
            fees = quote(market, self.config.fees)
        except FeeCeilingExceeded as exc:
            self._hold_for_fees(fresh, exc)
            return
        if self._fee_block is not None:
            log.info("fees are back under the ceiling; sending")
            self._fee_block = None
        call_data: dict[int, bytes] = {}

        async def estimate(group: Sequence[_Request]) -> int:
            call_data[id(group)] = data = self._call_data(group)
            return await self._estimate_data(data)

        try:
            good, bad = await split_by_estimate(fresh, estimate)
        except (ContractRevert, InsufficientFunds) as batch_wide:
            # The signer lost its role or cannot pay: no split or retry fixes that.
            if isinstance(batch_wide, InsufficientFunds):
                self._low_balance_alarm("gas estimation says the signer cannot pay")
            for request in fresh:
                self._fail(request, batch_wide)
            return
        for request, revert in bad:
            self._fail(request, revert)
        for group, gas in good:
            self.gas_model.learn(gas, len(group))
            await self._send_new(group, gas, fees, call_data[id(group)])

    def _call_data(self, requests: Sequence[_Request]) -> bytes:
        return self.contract.mint_batch_call_data(
            [request.recipient for request in requests],
            [request.token_uri for request in requests],
            [request.request_id for request in requests],
        )

    async def _estimate_data(self, data: bytes) -> int:
        call = {"from": self.account.address, "to": self.contract.address, "data": "0x" + data.hex()}
        try:
            return _int(await self.rpc.call("eth_estimateGas", [call]))
        except RpcCallError as exc:
            raise self._revert_error(exc) from None

    @staticmethod
    def _revert_error(exc: RpcCallError) -> ChainError:
        data = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else None
        message = exc.rpc_message.lower()
        if "insufficient funds" in message:
            return InsufficientFunds(exc.rpc_message)
        if data is not None and len(data) >= 10:
            return decode_revert(data)
        if "revert" in message:
            return ContractRevert(exc.rpc_message)
        return exc

    def _gas_limit(self, estimate: int) -> int:
        return int(estimate * self.config.gas_margin) + 20_000

    async def _send_new(self, requests: list[_Request], gas_estimate: int, fees: Fees, data: bytes) -> None:
        assert self._nonces is not None
        async with self._send_lock:
            if not self._running:
                self._requeue(requests)
                return
            if not requests and (self._nonces.blocking_gap() is None or self._pending):
                return  # the gap was filled meanwhile
            nonce = self._nonces.allocate()
            gas = self._gas_limit(gas_estimate) if requests else _FILLER_GAS
            tx = _Tx(nonce=nonce, requests=requests, gas=gas, fees=fees, data=data)
            await self._sign(tx)
            try:
                await self.journal.put(self._record(tx))
            except BaseException:
                self._nonces.release(nonce)
                raise
            self._txs[nonce] = tx
            for request in requests:
                request.nonce = nonce
            self.stats.txs_sent += 1
            self.stats.fillers += not requests
            outcome, kind, error = await self._broadcast(tx)
        if outcome == "rejected":
            await self._first_send_rejected(tx, kind, error)
            return
        for request in requests:
            request.waiting_since = None
        self._notify(requests, MintProgress("sent", f"sent in {tx.hashes[-1]} (nonce {nonce})", tx.hashes[-1]))
        self._poke.set()

    async def _fill_gap(self) -> None:
        """Nothing to send, but a free nonce blocks later transactions: fill it with a 0-value self-transfer."""
        assert self._nonces is not None
        market = await read_market(self.rpc)
        try:
            fees = quote(market, self.config.fees)
        except FeeCeilingExceeded:
            # The transactions behind the gap cannot be mined at these prices either.
            await asyncio.sleep(self.config.fee_recheck_s)
            return
        if self._nonces.blocking_gap() is None or self._pending:
            return
        log.info("filling nonce gap at %d", self._nonces.blocking_gap())
        await self._send_new([], _FILLER_GAS, fees, b"")

    async def _sign(self, tx: _Tx) -> None:
        assert self.chain_id is not None
        fields_: dict[str, Any] = {
            "to": self.contract.address if tx.requests else self.account.address,
            "data": tx.data,
            "value": 0,
            "gas": tx.gas,
            "nonce": tx.nonce,
            "chainId": self.chain_id,
            **tx.fees.tx_fields(),
        }
        # One signature per batch (~4 ms for 150 mints, 40 KB locally); a remote signer is one HTTP call.
        tx.raw = await self.account.sign_transaction(fields_)
        tx.hashes.append("0x" + keccak(tx.raw).hex())
        tx.signed_at = time.time()

    def _record(self, tx: _Tx) -> TxRecord:
        return TxRecord(
            nonce=tx.nonce,
            items=tuple(JournalItem(r.request_id, r.recipient, r.token_uri) for r in tx.requests),
            raw=tx.raw,
            hashes=tuple(tx.hashes),
            gas=tx.gas,
            fees=tx.fees,
            signed_at=tx.signed_at,
        )

    async def _broadcast(self, tx: _Tx) -> tuple[SendOutcome, str, ChainError | None]:
        """Send the latest version. 'unknown' means it may or may not be in a pool: the confirmer decides."""
        tx.sent_at = time.monotonic()
        tx.sent_head = self._head or 0
        self.stats.broadcasts += 1
        try:
            await self.rpc.call("eth_sendRawTransaction", ["0x" + tx.raw.hex()])
        except RpcCallError as exc:
            kind = classify_send_error(exc.rpc_message)
            if kind == "known":
                return "accepted", kind, None
            if kind in ("nonce_low", "nonce_high"):
                self.stats.nonce_errors += 1
                log.warning("nonce error at %d (%s); resyncing from the chain", tx.nonce, exc.rpc_message[:80])
                self._poke.set()
                return "unknown", kind, exc
            if kind == "replacement" or exc.ambiguous:
                return "unknown", kind, exc
            self.stats.send_rejections += 1
            return "rejected", kind, self._revert_error(exc) if kind == "funds" else exc
        except ChainError as exc:
            # Transport gave up mid-send: the bytes may have arrived. The journal has them;
            # the confirmer looks them up and rebroadcasts if the node never saw them.
            log.warning("send of nonce %d is in doubt: %s", tx.nonce, str(exc)[:200])
            return "unknown", "transport", exc
        return "accepted", "ok", None

    async def _first_send_rejected(self, tx: _Tx, kind: str, error: ChainError | None) -> None:
        """The node refused the only version of a transaction: its nonce is free again."""
        await self._abandon(tx)
        message = str(error)[:300] if error else kind
        if kind == "funds":
            self._low_balance_alarm("a send was refused for insufficient funds")
            for request in tx.requests:
                self._fail(request, InsufficientFunds(f"the signer cannot pay for gas: {message}"))
            return
        if kind == "fee":
            # Fees moved between the quote and the send; quote again shortly, no attempt counted.
            self._fee_wait_until = max(self._fee_wait_until, time.monotonic() + min(0.25, self.config.fee_recheck_s))
            self._requeue(tx.requests)
            return
        log.warning("send of nonce %d refused: %s", tx.nonce, message)
        self._count_attempt(tx.requests, SendRejected(f"the node refused the transaction: {message}"))

    def _count_attempt(self, requests: Sequence[_Request], error: ChainError) -> None:
        retry = []
        for request in requests:
            request.attempts += 1
            if request.attempts >= self.config.max_attempts:
                self._fail(request, error)
            else:
                retry.append(request)
        self._requeue(retry)

    async def _abandon(self, tx: _Tx) -> None:
        """Forget a transaction whose nonce no version holds; later sends fill the nonce."""
        assert self._nonces is not None
        if self._txs.get(tx.nonce) is tx:
            del self._txs[tx.nonce]
        self._nonces.release(tx.nonce)
        await self.journal.delete(tx.nonce)
        self._wake.set()

    # ---- the confirmer -----------------------------------------------------------------------------

    async def _confirmer_loop(self) -> None:
        backoff = 0
        while self._running:
            try:
                await self._confirm_tick()
                backoff = 0
            except asyncio.CancelledError:
                raise
            except FenceLost as exc:
                self._lose_fence(exc)
                return
            except Exception as exc:  # noqa: BLE001 - confirming must go on through any fault
                self.stats.loop_errors += 1
                log.warning("confirmer: %s: %s", type(exc).__name__, str(exc)[:300])
                await asyncio.sleep(self.rpc.backoff(backoff))
                backoff = min(backoff + 1, 8)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.config.poll_s)
            self._poke.clear()

    async def _confirm_tick(self) -> None:
        assert self._nonces is not None
        now = time.monotonic()
        head, latest, pending = await self._chain_counts()
        self._head = head
        if latest != self._latest_nonce:
            self._latest_nonce = latest
            self._latest_moved_at = now
            self._latest_moved_head = head
        await self._check_balance(now)
        reconciled = self._nonces.reconcile(latest, pending)
        if reconciled.gaps:
            self.stats.nonce_gaps += len(reconciled.gaps)
            log.warning("nonce gap at %s (chain pending %d); filling", list(reconciled.gaps), pending)
            self._wake.set()
        if reconciled.jumped_to is not None:
            log.warning("the chain's pending nonce %d is ahead of ours: someone else used the key", pending)

        depth = self.config.confirmations
        for tx in self._txs.values():
            if tx.mined is not None and tx.nonce >= latest:
                self._unmine(tx)
        lookups: list[tuple[_Tx, str]] = []
        for tx in sorted(self._txs.values(), key=lambda t: t.nonce):
            if tx.mined is None and tx.nonce < latest:
                lookups += [(tx, tx_hash) for tx_hash in tx.hashes]
            elif tx.mined is not None and head >= tx.mined.block_number + depth - 1:
                lookups.append((tx, tx.mined.tx_hash))
        if lookups:
            receipts = await self._receipts([tx_hash for _, tx_hash in lookups])
            by_tx: dict[int, list[dict[str, Any]]] = {}
            for (tx, _), receipt in zip(lookups, receipts, strict=True):
                by_tx.setdefault(tx.nonce, [])
                if receipt is not None:
                    by_tx[tx.nonce].append(receipt)
            for nonce, found in by_tx.items():
                settling = self._txs.get(nonce)
                if settling is not None:
                    await self._settle(settling, found, head, now)

        unmined = sorted(
            (tx for tx in self._txs.values() if tx.mined is None and tx.nonce >= latest), key=lambda t: t.nonce
        )
        stalled_chain = bool(unmined) and (
            now - self._latest_moved_at > self.config.stall_s
            or head - self._latest_moved_head >= self.config.stall_blocks
        )
        # When our nonce is stuck, every transaction priced under today's market needs a
        # replacement, not just the lowest: otherwise they would stall one after another.
        market = await read_market(self.rpc) if stalled_chain else None
        for position, tx in enumerate(unmined):
            if tx.recovering:
                continue
            age = now - tx.sent_at
            missing = tx.nonce >= pending and age > self.config.missing_grace_s
            fresh_enough = age < self.config.stall_s and head - tx.sent_head < self.config.stall_blocks
            cheap = market is not None and underpriced(tx.fees, market, self.config.fees)
            stalled = stalled_chain and (position == 0 or cheap or tx.fee_blocked) and not fresh_enough
            if missing or stalled:
                tx.recovering = True
                self._spawn(self._recover(tx, stalled=stalled and not missing))

    async def _settle(self, tx: _Tx, found: list[dict[str, Any]], head: int, now: float) -> None:
        """Act on receipts for a transaction whose nonce the chain has used, or that awaits its depth."""
        assert self._nonces is not None
        if tx.mined is not None:
            # Depth reached: the receipt must still be in the block we saw it in.
            receipt = found[0] if found else None
            if receipt is None:
                self._unmine(tx)
            elif receipt["blockHash"] != tx.mined.block_hash:
                tx.mined = _Mined(tx.mined.tx_hash, _int(receipt["blockNumber"]), receipt["blockHash"], receipt)
            else:
                await self._finalize(tx)
            return
        if not found:
            # The nonce is used but none of our versions has a receipt. Give the node a moment
            # (receipts can lag the nonce) and never while a new version is being signed.
            if tx.recovering:
                return
            if tx.consumed_seen_at is None:
                tx.consumed_seen_at = now
                return
            if now - tx.consumed_seen_at < max(1.0, 4 * self.config.poll_s):
                return
            await self._displaced(tx)
            return
        receipt = found[0]
        tx.consumed_seen_at = None
        if _int(receipt["status"]) != 1:
            await self._reverted(tx, receipt)
            return
        tx.mined = _Mined(receipt["transactionHash"], _int(receipt["blockNumber"]), receipt["blockHash"], receipt)
        self._notify(tx.requests, MintProgress("mined", f"mined in block {tx.mined.block_number}", tx.mined.tx_hash))
        if head >= tx.mined.block_number + self.config.confirmations - 1:
            await self._finalize(tx)

    def _unmine(self, tx: _Tx) -> None:
        assert tx.mined is not None
        log.warning("nonce %d: %s left the chain in a reorg; back in flight", tx.nonce, tx.mined.tx_hash)
        self.stats.reorgs += 1
        tx.mined = None
        tx.sent_at = 0.0
        self._notify(tx.requests, MintProgress("requeued", "a reorg dropped the mint; sending again"))

    async def _finalize(self, tx: _Tx) -> None:
        assert self._nonces is not None
        assert tx.mined is not None
        mined = tx.mined
        receipt = {
            **mined.receipt,
            "status": 1,
            "blockNumber": mined.block_number,
            "gasUsed": _int(mined.receipt["gasUsed"]),
        }
        outcome = self.contract.parse_receipt(receipt)
        minted = {m.request_id: m for m in outcome.minted}
        skipped = {s.request_id: s for s in outcome.skipped}
        share = outcome.gas_used // max(1, len(minted))
        leftovers = []
        for request in tx.requests:
            token = minted.get(request.request_id)
            if token is not None:
                self._resolve(
                    request,
                    MintReceipt(
                        request_id=request.request_id,
                        token_id=token.token_id,
                        recipient=token.to,
                        tx_hash=mined.tx_hash,
                        block_number=mined.block_number,
                        gas_used=share,
                        already_minted=False,
                        batch_size=len(minted),
                    ),
                )
            elif request.request_id in skipped:
                self.stats.skipped += 1
                log.warning("request %s was skipped as already minted", request.request_id.hex()[:12])
                self._complete_existing(request, skipped[request.request_id].existing_token_id)
            else:
                leftovers.append(request)
        del self._txs[tx.nonce]
        self._nonces.settle(tx.nonce)
        if leftovers:
            # An older version without these requests was mined; they go out again.
            self._requeue(leftovers)
        await self.journal.delete(tx.nonce)
        self._wake.set()

    async def _displaced(self, tx: _Tx) -> None:
        """Our nonce was used by a transaction that is none of our versions: the requests go out again."""
        assert self._nonces is not None
        self.stats.displaced += 1
        log.warning("nonce %d was used by a transaction we did not sign for it; requeueing", tx.nonce)
        del self._txs[tx.nonce]
        self._nonces.settle(tx.nonce)
        await self.journal.delete(tx.nonce)
        self._requeue(tx.requests)

    async def _reverted(self, tx: _Tx, receipt: dict[str, Any]) -> None:
        assert self._nonces is not None
        self.stats.reverted_txs += 1
        gas_used = _int(receipt["gasUsed"])
        reason: ChainError = ContractRevert(f"transaction {receipt['transactionHash']} reverted")
        if gas_used >= tx.gas:
            # Out of gas: estimates will be scaled up for the next batches.
            self.gas_model.per_item = self.gas_model.per_item * 3 // 2
            reason = ContractRevert(f"transaction {receipt['transactionHash']} ran out of gas")
        elif tx.requests:
            reason = await self._replay_revert(tx, _int(receipt["blockNumber"])) or reason
        log.warning("nonce %d reverted: %s", tx.nonce, reason)
        del self._txs[tx.nonce]
        self._nonces.settle(tx.nonce)
        await self.journal.delete(tx.nonce)
        self._count_attempt(tx.requests, reason)

    async def _replay_revert(self, tx: _Tx, block_number: int) -> ChainError | None:
        call = {
            "from": self.account.address,
            "to": self.contract.address,
            "data": "0x" + tx.data.hex(),
            "gas": hex(tx.gas),
        }
        try:
            await self.rpc.call("eth_call", [call, hex(max(0, block_number - 1))])
        except RpcCallError as exc:
            return self._revert_error(exc)
        except ChainError:
            return None
        return None

    # ---- recovery of one transaction ---------------------------------------------------------------

    async def _recover(self, tx: _Tx, *, stalled: bool) -> None:
        """A transaction is missing from the pool or stalled: rebroadcast it, or sign a bumped version."""
        try:
            await self._recover_inner(tx, stalled=stalled)
        except FenceLost as exc:
            self._lose_fence(exc)
        finally:
            tx.recovering = False

    async def _recover_inner(self, tx: _Tx, *, stalled: bool) -> None:
        known = await self.rpc.batch([("eth_getTransactionByHash", [h]) for h in tx.hashes])
        present = [answer for answer in known if isinstance(answer, dict)]
        if any(answer.get("blockNumber") for answer in present):
            self._poke.set()  # mined: the confirmer takes it from here
            return
        if present and not stalled:
            tx.sent_at = time.monotonic()  # in a pool, queued behind a lower nonce
            return
        if stalled:
            self.stats.stalls += 1
            log.warning("nonce %d stalled (our nonce has not moved); replacing with a bumped fee", tx.nonce)
        # Every retry asks the chain again before anything is signed.
        token_ids = await self._token_ids([r.request_id for r in tx.requests]) if tx.requests else []
        minted_elsewhere = [(r, t) for r, t in zip(tx.requests, token_ids, strict=True) if t is not None]
        market = await read_market(self.rpc)
        if not minted_elsewhere and not stalled and not underpriced(tx.fees, market, self.config.fees):
            self.stats.rebroadcasts += 1
            log.info("nonce %d missing from the pool; rebroadcasting %s", tx.nonce, tx.hashes[-1])
            outcome, kind, error = await self._broadcast(tx)
            if outcome == "rejected":
                await self._version_rejected(tx, kind, error, in_pool=bool(present))
            return
        try:
            fees = bump(tx.fees, market, self.config.fees)
        except FeeCeilingExceeded as exc:
            if not tx.fee_blocked:
                log.warning("nonce %d needs a replacement above the fee ceiling; waiting: %s", tx.nonce, exc)
                self._notify(tx.requests, MintProgress("waiting", f"sent, waiting for fees to fall: {exc}"))
            tx.fee_blocked = True
            tx.sent_at = time.monotonic()
            return
        await self._replace(tx, fees, minted_elsewhere, in_pool=bool(present))

    async def _replace(
        self, tx: _Tx, fees: Fees, minted_elsewhere: list[tuple[_Request, int]], *, in_pool: bool
    ) -> None:
        data, gas = tx.data, tx.gas
        if minted_elsewhere:
            # The replacement carries only what is still unminted (a plain self-transfer if nothing).
            done = {request.request_id for request, _ in minted_elsewhere}
            live = [request for request in tx.requests if request.request_id not in done]
            data = self._call_data(live) if live else b""
            gas = self._gas_limit(await self._estimate_data(data)) if live else _FILLER_GAS
        async with self._send_lock:
            if self._txs.get(tx.nonce) is not tx or tx.mined is not None or not self._running:
                return
            for request, token_id in minted_elsewhere:
                tx.requests.remove(request)
                self._complete_existing(request, token_id)
            previous = tx.fees
            tx.data, tx.gas, tx.fees = data, gas, fees
            await self._sign(tx)
            await self.journal.put(self._record(tx))
            self.stats.replacements += 1
            log.info(
                "nonce %d replaced: max fee %d -> %d wei (%s)", tx.nonce, previous.max_fee, fees.max_fee, tx.hashes[-1]
            )
            outcome, kind, error = await self._broadcast(tx)
        if outcome == "rejected":
            await self._version_rejected(tx, kind, error, in_pool=in_pool)
            return
        tx.fee_blocked = False
        self._notify(tx.requests, MintProgress("sent", f"replaced by {tx.hashes[-1]}", tx.hashes[-1]))

    async def _version_rejected(self, tx: _Tx, kind: str, error: ChainError | None, *, in_pool: bool) -> None:
        """A rebroadcast or replacement was refused. Only a nonce no version holds may be given up."""
        tx.rejections += 1
        message = str(error)[:300] if error else kind
        log.warning("nonce %d: version refused (%s)", tx.nonce, message)
        if in_pool:
            return  # an earlier version is still waiting in the pool
        if kind == "funds":
            await self._abandon(tx)
            self._low_balance_alarm("a send was refused for insufficient funds")
            for request in tx.requests:
                self._fail(request, InsufficientFunds(f"the signer cannot pay for gas: {message}"))
            return
        if tx.rejections >= self.config.max_attempts and kind != "fee":
            await self._abandon(tx)
            self._count_attempt(tx.requests, SendRejected(f"the node refused the transaction: {message}"))

    # ---- already minted -------------------------------------------------------------------------------

    def _complete_existing(self, request: _Request, token_id: int) -> None:
        if request.request_id in self._completing:
            return
        self._completing.add(request.request_id)
        self._pending.pop(request.request_id, None)
        self._spawn(self._complete_existing_task(request, token_id))

    async def _complete_existing_task(self, request: _Request, token_id: int) -> None:
        """The chain already has this request's token: confirm it at depth and report it."""
        try:
            for attempt in range(20):
                try:
                    receipt = await self._existing_receipt(request.request_id, token_id)
                    while (self._head or 0) < receipt.block_number + self.config.confirmations - 1:
                        await asyncio.sleep(self.config.poll_s)
                    (still,) = await self._token_ids([request.request_id])
                    if still == token_id:
                        self._resolve(request, receipt)
                        return
                    if still is None:
                        # A reorg took it away: mint it again.
                        self._requeue([request])
                        return
                except ChainError as exc:
                    log.info("looking up existing token %d: %s", token_id, exc)
                await asyncio.sleep(self.rpc.backoff(attempt))
            self._fail(request, RpcError(f"token {token_id} exists but its Minted event could not be read"))
        finally:
            self._completing.discard(request.request_id)

    # ---- balance and fencing ----------------------------------------------------------------------------

    async def _check_balance(self, now: float) -> None:
        if now - self._balance_checked_at < self.config.balance_check_s:
            return
        self._balance_checked_at = now
        self._balance = _int(await self.rpc.call("eth_getBalance", [self.account.address, "latest"]))
        low = self._balance < self.config.low_balance_wei
        if low and not self._low_balance:
            self._low_balance_alarm(f"balance {self._balance / 1e18:.6f} ETH is below the threshold")
        elif not low and self._low_balance:
            log.info("signer %s balance recovered: %.6f ETH", self.account.address, self._balance / 1e18)
        self._low_balance = low

    def _low_balance_alarm(self, why: str) -> None:
        self._low_balance = True
        self.stats.low_balance_alerts += 1
        log.error("LOW SIGNER BALANCE: %s: %s; top it up before mints fail", self.account.address, why)

    def _lose_fence(self, exc: FenceLost) -> None:
        log.error("lease lost; this minter stops sending: %s", exc)
        self._fatal = exc
        self._running = False
        for request in list(self._requests.values()):
            if not request.future.done():
                request.future.set_exception(exc)
