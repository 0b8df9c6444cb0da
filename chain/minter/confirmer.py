"""Follow the chain: receipts of used nonces, confirmation depth, reorgs that send mints back, the signer's balance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from chain.errors import ChainError, ContractRevert
from chain.journal import FenceLost
from chain.minter.config import MintProgress, MintReceipt
from chain.minter.existing import AlreadyMinted
from chain.minter.reads import ChainReads, as_int, revert_error
from chain.minter.recovery import Recovery
from chain.minter.state import Mined, MinterState, MintTx
from chain.rpc import RpcCallError

log = logging.getLogger("personamint.minter")


class Confirmer:
    """One loop per minter: each tick reads head and nonces, settles what the chain decided, hands the rest on."""

    def __init__(self, state: MinterState, reads: ChainReads, recovery: Recovery, existing: AlreadyMinted) -> None:
        self.state = state
        self.reads = reads
        self.recovery = recovery
        self.existing = existing

    async def run(self) -> None:
        state = self.state
        backoff = 0
        while state.running:
            try:
                await self._tick()
                backoff = 0
                if state.unreachable_since is not None:
                    self._reachable_again()
            except asyncio.CancelledError:
                raise
            except FenceLost as exc:
                state.lose_fence(exc)
                return
            except Exception as exc:  # noqa: BLE001 - confirming must go on through any fault
                state.stats.loop_errors += 1
                log.warning("confirmer: %s: %s", type(exc).__name__, str(exc)[:300])
                if isinstance(exc, ChainError) and not isinstance(exc, RpcCallError):
                    self._unreachable(exc)
                await asyncio.sleep(state.rpc.backoff(backoff))
                backoff = min(backoff + 1, 8)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.poke.wait(), state.config.poll_s)
            state.poke.clear()

    def _unreachable(self, exc: ChainError) -> None:
        """The node stopped answering (its client's retries are spent): tell every waiting request why."""
        state = self.state
        if state.unreachable_since is not None:
            return
        state.unreachable_since = time.monotonic()
        state.unreachable_detail = (
            f"{state.where} is unreachable ({type(exc).__name__}); the mint waits and resumes when it answers"
        )
        log.warning("%s is unreachable (%s); mints wait for it", state.where, type(exc).__name__)
        state.notify(list(state.requests.values()), MintProgress("waiting", state.unreachable_detail))

    def _reachable_again(self) -> None:
        state = self.state
        assert state.unreachable_since is not None
        down_s = time.monotonic() - state.unreachable_since
        state.unreachable_since = None
        log.info("%s answers again after %.1f s", state.where, down_s)
        state.notify(list(state.requests.values()), MintProgress("resumed", f"{state.where} answers again; minting"))
        state.wake.set()

    async def _tick(self) -> None:
        state = self.state
        now = time.monotonic()
        head, latest, pending = await self.reads.counts()
        state.head = head
        if latest != state.latest_nonce:
            state.latest_nonce = latest
            state.latest_moved_at = now
            state.latest_moved_head = head
        await self._check_balance(now)
        self.recovery.resync(latest, pending)

        depth = state.config.confirmations
        for tx in state.txs.values():
            if tx.mined is not None and tx.nonce >= latest:
                self._unmine(tx)
        lookups: list[tuple[MintTx, str]] = []
        for tx in sorted(state.txs.values(), key=lambda t: t.nonce):
            if tx.mined is None and tx.nonce < latest:
                lookups += [(tx, tx_hash) for tx_hash in tx.hashes]
            elif tx.mined is not None and head >= tx.mined.block_number + depth - 1:
                lookups.append((tx, tx.mined.tx_hash))
        if lookups:
            receipts = await self.reads.receipts([tx_hash for _, tx_hash in lookups])
            by_tx: dict[int, list[dict[str, Any]]] = {}
            for (tx, _), receipt in zip(lookups, receipts, strict=True):
                by_tx.setdefault(tx.nonce, [])
                if receipt is not None:
                    by_tx[tx.nonce].append(receipt)
            for nonce, found in by_tx.items():
                settling = state.txs.get(nonce)
                if settling is not None:
                    await self._settle(settling, found, head, now)
        await self.recovery.watch(head, latest, pending, now)

    async def _settle(self, tx: MintTx, found: list[dict[str, Any]], head: int, now: float) -> None:
        """Act on receipts for a transaction whose nonce the chain has used, or that awaits its depth."""
        state = self.state
        if tx.mined is not None:
            # Depth reached: the receipt must still be in the block we saw it in.
            receipt = found[0] if found else None
            if receipt is None:
                self._unmine(tx)
            elif receipt["blockHash"] != tx.mined.block_hash:
                tx.mined = Mined(tx.mined.tx_hash, as_int(receipt["blockNumber"]), receipt["blockHash"], receipt)
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
            if now - tx.consumed_seen_at < max(1.0, 4 * state.config.poll_s):
                return
            await self._displaced(tx)
            return
        receipt = found[0]
        tx.consumed_seen_at = None
        if as_int(receipt["status"]) != 1:
            await self._reverted(tx, receipt)
            return
        tx.mined = Mined(receipt["transactionHash"], as_int(receipt["blockNumber"]), receipt["blockHash"], receipt)
        state.notify(tx.requests, MintProgress("mined", f"mined in block {tx.mined.block_number}", tx.mined.tx_hash))
        if head >= tx.mined.block_number + state.config.confirmations - 1:
            await self._finalize(tx)

    def _unmine(self, tx: MintTx) -> None:
        assert tx.mined is not None
        state = self.state
        log.warning("nonce %d: %s left the chain in a reorg; back in flight", tx.nonce, tx.mined.tx_hash)
        state.stats.reorgs += 1
        tx.mined = None
        tx.sent_at = 0.0
        state.notify(tx.requests, MintProgress("requeued", "a reorg dropped the mint; sending again"))

    async def _finalize(self, tx: MintTx) -> None:
        assert tx.mined is not None
        state = self.state
        mined = tx.mined
        receipt = {
            **mined.receipt,
            "status": 1,
            "blockNumber": mined.block_number,
            "gasUsed": as_int(mined.receipt["gasUsed"]),
        }
        # A filler mints nothing: any contract reads its (empty) receipt.
        outcome = state.contract_at(tx.contract or state.contract.address).parse_receipt(receipt)
        minted = {m.request_id: m for m in outcome.minted}
        skipped = {s.request_id: s for s in outcome.skipped}
        share = outcome.gas_used // max(1, len(minted))
        leftovers = []
        for request in tx.requests:
            token = minted.get(request.request_id)
            if token is not None:
                state.resolve(
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
                state.stats.skipped += 1
                log.warning("request %s was skipped as already minted", request.request_id.hex()[:12])
                self.existing.complete(request, skipped[request.request_id].existing_token_id)
            else:
                leftovers.append(request)
        del state.txs[tx.nonce]
        state.nonces.settle(tx.nonce)
        if leftovers:
            # An older version without these requests was mined; they go out again.
            state.requeue(leftovers)
        await state.journal.delete(tx.nonce)
        state.wake.set()

    async def _displaced(self, tx: MintTx) -> None:
        """Our nonce was used by a transaction that is none of our versions: the requests go out again."""
        state = self.state
        state.stats.displaced += 1
        log.warning("nonce %d was used by a transaction we did not sign for it; requeueing", tx.nonce)
        del state.txs[tx.nonce]
        state.nonces.settle(tx.nonce)
        await state.journal.delete(tx.nonce)
        state.requeue(tx.requests)

    async def _reverted(self, tx: MintTx, receipt: dict[str, Any]) -> None:
        state = self.state
        state.stats.reverted_txs += 1
        gas_used = as_int(receipt["gasUsed"])
        reason: ChainError = ContractRevert(f"transaction {receipt['transactionHash']} reverted")
        if gas_used >= tx.gas:
            # Out of gas: estimates will be scaled up for the next batches.
            state.gas_model.per_item = state.gas_model.per_item * 3 // 2
            reason = ContractRevert(f"transaction {receipt['transactionHash']} ran out of gas")
        elif tx.requests:
            reason = await self._replay_revert(tx, as_int(receipt["blockNumber"])) or reason
        log.warning("nonce %d reverted: %s", tx.nonce, reason)
        del state.txs[tx.nonce]
        state.nonces.settle(tx.nonce)
        await state.journal.delete(tx.nonce)
        state.count_attempt(tx.requests, reason)

    async def _replay_revert(self, tx: MintTx, block_number: int) -> ChainError | None:
        state = self.state
        call = {
            "from": state.account.address,
            "to": tx.contract or state.account.address,
            "data": "0x" + tx.data.hex(),
            "gas": hex(tx.gas),
        }
        try:
            await state.rpc.call("eth_call", [call, hex(max(0, block_number - 1))])
        except RpcCallError as exc:
            return revert_error(exc)
        except ChainError:
            return None
        return None

    async def _check_balance(self, now: float) -> None:
        state = self.state
        if now - state.balance_checked_at < state.config.balance_check_s:
            return
        state.balance_checked_at = now
        state.balance = as_int(await state.rpc.call("eth_getBalance", [state.account.address, "latest"]))
        low = state.balance < state.config.low_balance_wei
        if low and not state.low_balance:
            state.low_balance_alarm(f"balance {state.balance / 1e18:.6f} ETH is below the threshold")
        elif not low and state.low_balance:
            log.info("signer %s balance recovered: %.6f ETH", state.account.address, state.balance / 1e18)
        state.low_balance = low
