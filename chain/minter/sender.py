"""Turn batches into transactions: check tokenIdOf, price, estimate, take a nonce, sign, journal, then broadcast."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from eth_utils.crypto import keccak

from chain.batcher import split_by_estimate
from chain.errors import ChainError, ContractRevert, InsufficientFunds
from chain.fees import FeeCeilingExceeded, Fees, quote, read_market
from chain.journal import FenceLost, JournalItem, TxRecord
from chain.minter.config import MintProgress, SendRejected
from chain.minter.existing import AlreadyMinted
from chain.minter.intake import Intake
from chain.minter.reads import ChainReads, revert_error
from chain.minter.state import MinterState, MintRequest, MintTx
from chain.rpc import RpcCallError

log = logging.getLogger("personamint.minter")

FILLER_GAS = 21_000
"""A 0-value self-transfer: what fills a nonce nothing else will use."""

SendOutcome = Literal["accepted", "unknown", "rejected"]


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


class Sender:
    """The builder loops: every request is checked against the chain before it is signed into a new nonce."""

    def __init__(self, state: MinterState, reads: ChainReads, intake: Intake, existing: AlreadyMinted) -> None:
        self.state = state
        self.reads = reads
        self.intake = intake
        self.existing = existing

    async def run(self, index: int) -> None:
        """One builder loop; several run so token checks and estimates overlap the previous send."""
        state = self.state
        backoff = 0
        while state.running:
            batch: list[MintRequest] = []
            try:
                batch = await self.intake.next_batch()
                if batch:
                    await self._build_and_send(batch)
                elif state.nonce_book is not None and state.nonce_book.blocking_gap() is not None and not state.pending:
                    await self._fill_gap()
                backoff = 0
            except asyncio.CancelledError:
                state.requeue(batch)
                raise
            except FenceLost as exc:
                state.requeue(batch)
                state.lose_fence(exc)
                return
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch; it goes back
                state.requeue(batch)
                state.stats.loop_errors += 1
                log.warning("sender %d: %s: %s", index, type(exc).__name__, str(exc)[:300])
                await asyncio.sleep(state.rpc.backoff(backoff))
                backoff = min(backoff + 1, 8)

    async def _build_and_send(self, batch: list[MintRequest]) -> None:
        state = self.state
        # Exactly once: never sign a request into a new transaction if the chain has minted it.
        contract = batch[0].contract
        token_ids = await self.reads.token_ids(contract, [request.request_id for request in batch])
        fresh = []
        for request, token_id in zip(batch, token_ids, strict=True):
            if token_id is None:
                fresh.append(request)
            else:
                self.existing.complete(request, token_id)
        if not fresh:
            return
        market = await read_market(state.rpc)
        try:
            fees = quote(market, state.config.fees)
        except FeeCeilingExceeded as exc:
            self.intake.hold_for_fees(fresh, exc)
            return
        if state.fee_block is not None:
            log.info("fees are back under the ceiling; sending")
            state.fee_block = None
        call_data: dict[int, bytes] = {}

        async def estimate(group: Sequence[MintRequest]) -> int:
            call_data[id(group)] = data = self.reads.call_data(group)
            return await self.reads.estimate(contract, data)

        try:
            good, bad = await split_by_estimate(fresh, estimate)
        except (ContractRevert, InsufficientFunds) as batch_wide:
            # The signer lost its role or cannot pay: no split or retry fixes that.
            if isinstance(batch_wide, InsufficientFunds):
                state.low_balance_alarm("gas estimation says the signer cannot pay")
            for request in fresh:
                state.fail(request, batch_wide)
            return
        for request, revert in bad:
            state.fail(request, revert)
        for group, gas in good:
            state.gas_model.learn(gas, len(group))
            await self._send_new(group, gas, fees, call_data[id(group)])

    async def _send_new(self, requests: list[MintRequest], gas_estimate: int, fees: Fees, data: bytes) -> None:
        state = self.state
        nonces = state.nonces
        async with state.send_lock:
            if not state.running:
                state.requeue(requests)
                return
            if not requests and (nonces.blocking_gap() is None or state.pending):
                return  # the gap was filled meanwhile
            nonce = nonces.allocate()
            gas = self.reads.gas_limit(gas_estimate) if requests else FILLER_GAS
            tx = MintTx(nonce=nonce, requests=requests, gas=gas, fees=fees, data=data)
            await self.sign(tx)
            try:
                await state.journal.put(self.record(tx))
            except BaseException:
                nonces.release(nonce)
                raise
            state.txs[nonce] = tx
            for request in requests:
                request.nonce = nonce
            state.stats.txs_sent += 1
            state.stats.fillers += not requests
            outcome, kind, error = await self.broadcast(tx)
        if outcome == "rejected":
            await self._first_send_rejected(tx, kind, error)
            return
        for request in requests:
            request.waiting_since = None
        state.notify(requests, MintProgress("sent", f"sent in {tx.hashes[-1]} (nonce {nonce})", tx.hashes[-1]))
        state.poke.set()

    async def _fill_gap(self) -> None:
        """Nothing to send, but a free nonce blocks later transactions: fill it with a 0-value self-transfer."""
        state = self.state
        market = await read_market(state.rpc)
        try:
            fees = quote(market, state.config.fees)
        except FeeCeilingExceeded:
            # The transactions behind the gap cannot be mined at these prices either.
            await asyncio.sleep(state.config.fee_recheck_s)
            return
        if state.nonces.blocking_gap() is None or state.pending:
            return
        log.info("filling nonce gap at %d", state.nonces.blocking_gap())
        await self._send_new([], FILLER_GAS, fees, b"")

    async def sign(self, tx: MintTx) -> None:
        """Sign the transaction's current data, gas and fees as a new version of it."""
        state = self.state
        assert state.chain_id is not None
        fields_: dict[str, Any] = {
            "to": tx.contract or state.account.address,
            "data": tx.data,
            "value": 0,
            "gas": tx.gas,
            "nonce": tx.nonce,
            "chainId": state.chain_id,
            **tx.fees.tx_fields(),
        }
        # One signature per batch (~4 ms for 150 mints, 40 KB locally); a remote signer is one HTTP call.
        tx.raw = await state.account.sign_transaction(fields_)
        tx.hashes.append("0x" + keccak(tx.raw).hex())
        tx.signed_at = time.time()

    @staticmethod
    def record(tx: MintTx) -> TxRecord:
        """The journal entry for a transaction: written before every broadcast of a new version."""
        return TxRecord(
            nonce=tx.nonce,
            items=tuple(JournalItem(r.request_id, r.recipient, r.token_uri, r.contract) for r in tx.requests),
            raw=tx.raw,
            hashes=tuple(tx.hashes),
            gas=tx.gas,
            fees=tx.fees,
            signed_at=tx.signed_at,
        )

    async def broadcast(self, tx: MintTx) -> tuple[SendOutcome, str, ChainError | None]:
        """Send the latest version. 'unknown' means it may or may not be in a pool: the confirmer decides."""
        state = self.state
        tx.sent_at = time.monotonic()
        tx.sent_head = state.head or 0
        state.stats.broadcasts += 1
        try:
            await state.rpc.call("eth_sendRawTransaction", ["0x" + tx.raw.hex()])
        except RpcCallError as exc:
            kind = classify_send_error(exc.rpc_message)
            if kind == "known":
                return "accepted", kind, None
            if kind in ("nonce_low", "nonce_high"):
                state.stats.nonce_errors += 1
                log.warning("nonce error at %d (%s); resyncing from the chain", tx.nonce, exc.rpc_message[:80])
                state.poke.set()
                return "unknown", kind, exc
            if kind == "replacement" or exc.ambiguous:
                return "unknown", kind, exc
            state.stats.send_rejections += 1
            return "rejected", kind, revert_error(exc) if kind == "funds" else exc
        except ChainError as exc:
            # Transport gave up mid-send: the bytes may have arrived. The journal has them;
            # the confirmer looks them up and rebroadcasts if the node never saw them.
            log.warning("send of nonce %d is in doubt: %s", tx.nonce, str(exc)[:200])
            return "unknown", "transport", exc
        return "accepted", "ok", None

    async def _first_send_rejected(self, tx: MintTx, kind: str, error: ChainError | None) -> None:
        """The node refused the only version of a transaction: its nonce is free again."""
        state = self.state
        await self.abandon(tx)
        message = str(error)[:300] if error else kind
        if kind == "funds":
            state.low_balance_alarm("a send was refused for insufficient funds")
            for request in tx.requests:
                state.fail(request, InsufficientFunds(f"the signer cannot pay for gas: {message}"))
            return
        if kind == "fee":
            # Fees moved between the quote and the send; quote again shortly, no attempt counted.
            state.fee_wait_until = max(state.fee_wait_until, time.monotonic() + min(0.25, state.config.fee_recheck_s))
            state.requeue(tx.requests)
            return
        log.warning("send of nonce %d refused: %s", tx.nonce, message)
        state.count_attempt(tx.requests, SendRejected(f"the node refused the transaction: {message}"))

    async def abandon(self, tx: MintTx) -> None:
        """Forget a transaction whose nonce no version holds; later sends fill the nonce."""
        state = self.state
        if state.txs.get(tx.nonce) is tx:
            del state.txs[tx.nonce]
        state.nonces.release(tx.nonce)
        await state.journal.delete(tx.nonce)
        state.wake.set()
