"""The Minter: one hot signer's intake, senders, confirmer and recovery composed over one shared state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from eth_account.signers.local import LocalAccount

from chain.batcher import GasModel
from chain.contract import PersonaMint
from chain.journal import MemoryJournal, MintJournal
from chain.minter.config import (
    MinterConfig,
    MinterHealth,
    MinterStats,
    MinterStopped,
    MintReceipt,
    ProgressListener,
)
from chain.minter.confirmer import Confirmer
from chain.minter.existing import AlreadyMinted
from chain.minter.intake import Intake
from chain.minter.reads import ChainReads, as_int
from chain.minter.recovery import Recovery
from chain.minter.sender import Sender
from chain.minter.state import MinterState
from chain.nonce import NonceBook
from chain.rpc import JsonRpc
from chain.signers import LocalSigner, Signer

log = logging.getLogger("personamint.minter")


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
        contracts: Sequence[PersonaMint] = (),
    ) -> None:
        # Any Signer works (keystore, remote HTTP signer); a bare eth-account key is wrapped.
        signer: Signer = LocalSigner(account, source="account") if isinstance(account, LocalAccount) else account
        self._state = state = MinterState(
            rpc,
            signer,
            contract,
            config or MinterConfig(),
            journal if journal is not None else MemoryJournal(),
            chain_id,
            contracts,
        )
        reads = ChainReads(state)
        existing = AlreadyMinted(state, reads)
        self._intake = Intake(state)
        self._sender = Sender(state, reads, self._intake, existing)
        self._recovery = Recovery(state, reads, self._sender, existing)
        self._confirmer = Confirmer(state, reads, self._recovery, existing)
        self._reads = reads
        self._tasks: list[asyncio.Task[None]] = []

    # The collaborators and counters callers (the minter process, metrics, tests) read.
    @property
    def rpc(self) -> JsonRpc:
        return self._state.rpc

    @property
    def account(self) -> Signer:
        return self._state.account

    @property
    def contract(self) -> PersonaMint:
        return self._state.contract

    @property
    def contracts(self) -> dict[str, PersonaMint]:
        """Every contract it mints in (the default one first), by checksummed address."""
        return self._state.contracts

    @property
    def config(self) -> MinterConfig:
        return self._state.config

    @property
    def journal(self) -> MintJournal:
        return self._state.journal

    @property
    def chain_id(self) -> int | None:
        return self._state.chain_id

    @property
    def stats(self) -> MinterStats:
        return self._state.stats

    @property
    def gas_model(self) -> GasModel:
        return self._state.gas_model

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore journaled transactions, sync the nonce with the chain, start the loops."""
        state = self._state
        if state.running:
            return
        if state.chain_id is None:
            state.chain_id = as_int(await state.rpc.call("eth_chainId"))
        head, latest, pending = await self._reads.counts()
        state.head = head
        state.latest_nonce = latest
        state.latest_moved_at = time.monotonic()
        state.latest_moved_head = head
        state.nonce_book = NonceBook(pending)
        for record in await state.journal.load():
            self._recovery.restore(record)
        if state.txs:
            log.info("restored %d unconfirmed transactions from the journal", len(state.txs))
        state.running = True
        loops = [self._sender.run(index) for index in range(state.config.builders)]
        self._tasks = [asyncio.create_task(coro) for coro in [*loops, self._confirmer.run()]]

    async def stop(self) -> None:
        """Stop the loops. Unconfirmed transactions stay in the journal for the next minter."""
        state = self._state
        state.running = False
        for task in [*self._tasks, *state.side_tasks]:
            task.cancel()
        for task in [*self._tasks, *state.side_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        error = state.fatal or MinterStopped("the minter stopped; the request resumes on restart")
        for request in list(state.requests.values()):
            if not request.future.done():
                request.future.set_exception(error)

    # ---- public API --------------------------------------------------------------------------

    async def mint(
        self,
        request_id: bytes,
        recipient: str,
        token_uri: str,
        *,
        on_progress: ProgressListener | None = None,
        contract: str | None = None,
    ) -> MintReceipt:
        """Mint once per request_id in `contract` (default: the minter's first) and wait until confirmed;
        safe to call again after any crash."""
        return await self._intake.mint(request_id, recipient, token_uri, on_progress, contract)

    def health(self) -> MinterHealth:
        state = self._state
        now = time.monotonic()
        unmined = [tx for tx in state.txs.values() if tx.mined is None]
        oldest = min((tx.sent_at for tx in unmined if tx.sent_at), default=None)
        return MinterHealth(
            signer=state.account.address,
            running=state.running,
            balance_wei=state.balance,
            low_balance=state.low_balance,
            head=state.head,
            next_nonce=state.nonce_book.next if state.nonce_book else None,
            pending_requests=len(state.pending),
            in_flight_txs=len(state.txs),
            unmined_txs=len(unmined),
            oldest_unmined_s=None if oldest is None else round(now - oldest, 3),
            fee_wait=str(state.fee_block) if state.fee_block else None,
            counters={**state.stats.as_dict(), "rpc_retries": state.rpc.stats.retries},
        )

    async def find_existing(self, request_id: bytes, contract: str | None = None) -> MintReceipt | None:
        """The token already minted for request_id, read from the chain (not waiting for depth)."""
        address = contract or self._state.contract.address
        (token_id,) = await self._reads.token_ids(address, [request_id])
        if token_id is None:
            return None
        return await self._reads.existing_receipt(address, request_id, token_id)
