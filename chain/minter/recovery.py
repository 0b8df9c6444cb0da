"""Recover transactions: take over journaled ones, resync nonces, rebroadcast missing ones, replace stalled ones."""

from __future__ import annotations

import logging
import time

from chain.errors import ChainError, InsufficientFunds
from chain.fees import FeeCeilingExceeded, Fees, bump, read_market, underpriced
from chain.journal import FenceLost, TxRecord
from chain.minter.config import MintProgress, SendRejected
from chain.minter.existing import AlreadyMinted
from chain.minter.reads import ChainReads
from chain.minter.sender import FILLER_GAS, Sender
from chain.minter.state import MinterState, MintRequest, MintTx

log = logging.getLogger("personamint.minter")


class Recovery:
    """What happens when a transaction did not go as sent; every retry asks tokenIdOf before it signs.

    A request moves off a nonce only once no version there can still mint it: a
    replacement carries only what the chain has not minted meanwhile.
    """

    def __init__(self, state: MinterState, reads: ChainReads, sender: Sender, existing: AlreadyMinted) -> None:
        self.state = state
        self.reads = reads
        self.sender = sender
        self.existing = existing

    def restore(self, record: TxRecord) -> None:
        """Take over a journaled transaction (from this minter's last run, or one that lost its lease)."""
        state = self.state
        requests = []
        for item in record.items:
            request = state.requests.get(item.request_id) or state.new_request(
                item.request_id, item.recipient, item.token_uri, item.contract or state.contract.address
            )
            request.nonce = record.nonce
            requests.append(request)
        tx = MintTx(nonce=record.nonce, requests=requests, gas=record.gas, fees=record.fees)
        tx.data = self.reads.call_data(requests) if requests else b""
        tx.raw = record.raw
        tx.hashes = list(record.hashes)
        tx.signed_at = record.signed_at
        # Not known to be sent: the confirmer looks it up and rebroadcasts at once if absent.
        tx.sent_at = 0.0
        state.txs[record.nonce] = tx
        state.nonces.hold(record.nonce)

    def resync(self, latest: int, pending: int) -> None:
        """Square our nonces with the chain's: fill gaps the node does not have, note someone else's sends."""
        state = self.state
        reconciled = state.nonces.reconcile(latest, pending)
        if reconciled.gaps:
            state.stats.nonce_gaps += len(reconciled.gaps)
            log.warning("nonce gap at %s (chain pending %d); filling", list(reconciled.gaps), pending)
            state.wake.set()
        if reconciled.jumped_to is not None:
            log.warning("the chain's pending nonce %d is ahead of ours: someone else used the key", pending)

    async def watch(self, head: int, latest: int, pending: int, now: float) -> None:
        """Start recovering every unmined transaction that is missing from the pool or stalled."""
        state = self.state
        config = state.config
        unmined = sorted(
            (tx for tx in state.txs.values() if tx.mined is None and tx.nonce >= latest), key=lambda t: t.nonce
        )
        stalled_chain = bool(unmined) and (
            now - state.latest_moved_at > config.stall_s or head - state.latest_moved_head >= config.stall_blocks
        )
        # When our nonce is stuck, every transaction priced under today's market needs a
        # replacement, not just the lowest: otherwise they would stall one after another.
        market = await read_market(state.rpc) if stalled_chain else None
        for position, tx in enumerate(unmined):
            if tx.recovering:
                continue
            age = now - tx.sent_at
            missing = tx.nonce >= pending and age > config.missing_grace_s
            fresh_enough = age < config.stall_s and head - tx.sent_head < config.stall_blocks
            cheap = market is not None and underpriced(tx.fees, market, config.fees)
            stalled = stalled_chain and (position == 0 or cheap or tx.fee_blocked) and not fresh_enough
            if missing or stalled:
                tx.recovering = True
                state.spawn(self._recover(tx, stalled=stalled and not missing))

    async def _recover(self, tx: MintTx, *, stalled: bool) -> None:
        """A transaction is missing from the pool or stalled: rebroadcast it, or sign a bumped version."""
        try:
            await self._recover_inner(tx, stalled=stalled)
        except FenceLost as exc:
            self.state.lose_fence(exc)
        finally:
            tx.recovering = False

    async def _recover_inner(self, tx: MintTx, *, stalled: bool) -> None:
        state = self.state
        known = await state.rpc.batch_settled([("eth_getTransactionByHash", [h]) for h in tx.hashes])
        present = [answer for answer in known if isinstance(answer, dict)]
        if any(answer.get("blockNumber") for answer in present):
            state.poke.set()  # mined: the confirmer takes it from here
            return
        if present and not stalled:
            tx.sent_at = time.monotonic()  # in a pool, queued behind a lower nonce
            return
        if stalled:
            state.stats.stalls += 1
            log.warning("nonce %d stalled (our nonce has not moved); replacing with a bumped fee", tx.nonce)
        # Every retry asks the chain again before anything is signed.
        token_ids = (
            await self.reads.token_ids(tx.requests[0].contract, [r.request_id for r in tx.requests])
            if tx.requests
            else []
        )
        minted_elsewhere = [(r, t) for r, t in zip(tx.requests, token_ids, strict=True) if t is not None]
        market = await read_market(state.rpc)
        if not minted_elsewhere and not stalled and not underpriced(tx.fees, market, state.config.fees):
            state.stats.rebroadcasts += 1
            log.info("nonce %d missing from the pool; rebroadcasting %s", tx.nonce, tx.hashes[-1])
            outcome, kind, error = await self.sender.broadcast(tx)
            if outcome == "rejected":
                await self._version_rejected(tx, kind, error, in_pool=bool(present))
            return
        try:
            fees = bump(tx.fees, market, state.config.fees)
        except FeeCeilingExceeded as exc:
            if not tx.fee_blocked:
                log.warning("nonce %d needs a replacement above the fee ceiling; waiting: %s", tx.nonce, exc)
                state.notify(tx.requests, MintProgress("waiting", f"sent, waiting for fees to fall: {exc}"))
            tx.fee_blocked = True
            tx.sent_at = time.monotonic()
            return
        await self._replace(tx, fees, minted_elsewhere, in_pool=bool(present))

    async def _replace(
        self, tx: MintTx, fees: Fees, minted_elsewhere: list[tuple[MintRequest, int]], *, in_pool: bool
    ) -> None:
        state = self.state
        data, gas = tx.data, tx.gas
        if minted_elsewhere:
            # The replacement carries only what is still unminted (a plain self-transfer if nothing).
            done = {request.request_id for request, _ in minted_elsewhere}
            live = [request for request in tx.requests if request.request_id not in done]
            data = self.reads.call_data(live) if live else b""
            gas = self.reads.gas_limit(await self.reads.estimate(live[0].contract, data)) if live else FILLER_GAS
        async with state.send_lock:
            if state.txs.get(tx.nonce) is not tx or tx.mined is not None or not state.running:
                return
            for request, token_id in minted_elsewhere:
                tx.requests.remove(request)
                self.existing.complete(request, token_id)
            previous = tx.fees
            tx.data, tx.gas, tx.fees = data, gas, fees
            await self.sender.sign(tx)
            await state.journal.put(self.sender.record(tx))
            state.stats.replacements += 1
            log.info(
                "nonce %d replaced: max fee %d -> %d wei (%s)", tx.nonce, previous.max_fee, fees.max_fee, tx.hashes[-1]
            )
            outcome, kind, error = await self.sender.broadcast(tx)
        if outcome == "rejected":
            await self._version_rejected(tx, kind, error, in_pool=in_pool)
            return
        tx.fee_blocked = False
        state.notify(tx.requests, MintProgress("sent", f"replaced by {tx.hashes[-1]}", tx.hashes[-1]))

    async def _version_rejected(self, tx: MintTx, kind: str, error: ChainError | None, *, in_pool: bool) -> None:
        """A rebroadcast or replacement was refused. Only a nonce no version holds may be given up."""
        state = self.state
        tx.rejections += 1
        message = str(error)[:300] if error else kind
        log.warning("nonce %d: version refused (%s)", tx.nonce, message)
        if in_pool:
            return  # an earlier version is still waiting in the pool
        if kind == "funds":
            await self.sender.abandon(tx)
            state.low_balance_alarm("a send was refused for insufficient funds")
            for request in tx.requests:
                state.fail(request, InsufficientFunds(f"the signer cannot pay for gas: {message}"))
            return
        if tx.rejections >= state.config.max_attempts and kind != "fee":
            await self.sender.abandon(tx)
            state.count_attempt(tx.requests, SendRejected(f"the node refused the transaction: {message}"))
