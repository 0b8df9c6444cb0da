"""Accept mint requests, hold them while fees are over the ceiling, and hand senders batches sized to the gas budget."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from eth_utils.address import to_checksum_address

from chain.fees import FeeCeilingExceeded
from chain.minter.config import MinterStopped, MintProgress, MintReceipt, ProgressListener, RequestIdReused
from chain.minter.state import MinterState, MintRequest

log = logging.getLogger("personamint.minter")


class Intake:
    """The queue in front of the senders: one entry per request_id, however often it is asked for."""

    def __init__(self, state: MinterState) -> None:
        self.state = state

    async def mint(
        self,
        request_id: bytes,
        recipient: str,
        token_uri: str,
        on_progress: ProgressListener | None,
        contract: str | None = None,
    ) -> MintReceipt:
        state = self.state
        address = state.contract.address if contract is None else to_checksum_address(contract)
        state.contract_at(address)  # a contract this minter does not serve is refused before it is queued
        if state.fatal is not None:
            raise state.fatal
        if not state.running:
            raise MinterStopped("the minter is not running")
        done = state.resolved.get(request_id)
        if done is not None:
            receipt, resolved_uri, resolved_contract = done
            _same_request(
                request_id, (receipt.recipient, resolved_uri, resolved_contract), (recipient, token_uri, address)
            )
            return receipt
        request = state.requests.get(request_id)
        if request is not None:
            # The same id asked for with another recipient or URI is another request: never share a token.
            _same_request(
                request_id, (request.recipient, request.token_uri, request.contract), (recipient, token_uri, address)
            )
        else:
            request = state.new_request(request_id, to_checksum_address(recipient), token_uri, address)
            state.stats.requests += 1
            state.pending[request_id] = request
            state.wake.set()
        if on_progress is not None:
            request.listeners.append(on_progress)
            if state.unreachable_since is not None:  # arrived while the chain is down: say so now
                state.notify([request], MintProgress("waiting", state.unreachable_detail))
        try:
            return await asyncio.shield(request.future)
        finally:
            if on_progress is not None and on_progress in request.listeners:
                request.listeners.remove(on_progress)

    async def _wait_wake(self, wait_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.state.wake.wait(), wait_s)
        self.state.wake.clear()

    async def next_batch(self) -> list[MintRequest]:
        """The next requests to share a transaction; empty when a nonce gap needs filling (or on stop)."""
        state = self.state
        config = state.config
        while state.running:
            now = time.monotonic()
            if state.fee_wait_until > now:
                self.expire_fee_waits(now)
                await asyncio.sleep(min(state.fee_wait_until - now, config.poll_s * 4))
                continue
            if state.pending and state.unmined() < config.max_unmined:
                break
            if state.nonce_book is not None and state.nonce_book.blocking_gap() is not None and not state.pending:
                return []
            await self._wait_wake(config.poll_s * 4)
        else:
            return []
        want = state.gas_model.items_within(config.gas_budget, config.max_batch)
        if len(state.pending) < want and state.txs and config.linger_s > 0:
            # Others are in flight anyway: a short wait lets concurrent arrivals share one transaction.
            await asyncio.sleep(config.linger_s)
        if not state.pending:
            return []  # another sender took them all while this one lingered
        # One contract per transaction: the oldest request's, and the others waiting for it.
        contract = next(iter(state.pending.values())).contract
        batch = [request for request in state.pending.values() if request.contract == contract][:want]
        for request in batch:
            del state.pending[request.request_id]
        return batch

    def expire_fee_waits(self, now: float) -> None:
        state = self.state
        block = state.fee_block
        if block is None:
            return
        expired = 0
        for request in list(state.pending.values()):
            if request.waiting_since is not None and now - request.waiting_since > state.config.max_fee_wait_s:
                waited = now - request.waiting_since
                state.fail(request, FeeCeilingExceeded(block.needed_wei, block.ceiling_wei, waited_s=waited))
                expired += 1
        if expired and not state.pending:
            # Everyone who waited has given up. (A batch in a sender's hands is not "nobody": that sender
            # re-blocks or clears this itself after its quote, so an empty queue alone never clears it.)
            state.fee_block = None

    def hold_for_fees(self, batch: list[MintRequest], exc: FeeCeilingExceeded) -> None:
        """Fees are over the ceiling: put the batch back, and make every queued request wait."""
        state = self.state
        now = time.monotonic()
        if state.fee_block is None:
            log.warning("fees above the ceiling, mints wait: %s", exc)
            state.stats.fee_waits += 1
        state.fee_block = exc
        state.fee_wait_until = now + state.config.fee_recheck_s
        state.requeue(batch)
        newly = []
        for request in state.pending.values():
            if request.waiting_since is None:
                request.waiting_since = now
                newly.append(request)
        state.notify(newly, MintProgress("waiting", f"waiting for fees: {exc}"))
        self.expire_fee_waits(now)


def _same_request(request_id: bytes, known: tuple[str, str, str], asked: tuple[str, str, str]) -> None:
    """RequestIdReused unless `asked` (recipient, token URI, contract) is the request `known` for this id."""
    if known[0].lower() != asked[0].lower() or known[1] != asked[1] or known[2] != asked[2]:
        raise RequestIdReused(
            f"request id {request_id.hex()[:12]} is another mint's (other recipient, metadata or contract), "
            "not this one's"
        )
