"""Requests the chain has already minted (found by tokenIdOf): confirm that token at depth and report it.

A token found by request id is this request's only if it was minted to this request's recipient
with this request's URI (the Minted event's `to`, the mint call's URI): anything else means the
id was reused for another request, which fails with `request_id_reused` instead of claiming it.
"""

from __future__ import annotations

import asyncio
import logging

from chain.errors import ChainError, RpcError
from chain.minter.config import MintReceipt, RequestIdReused
from chain.minter.reads import ChainReads
from chain.minter.state import MinterState, MintRequest

log = logging.getLogger("personamint.minter")

_LOOKUP_ATTEMPTS = 20


class AlreadyMinted:
    """Finishes a request with the token the chain already holds for it, instead of sending it."""

    def __init__(self, state: MinterState, reads: ChainReads) -> None:
        self.state = state
        self.reads = reads

    def complete(self, request: MintRequest, token_id: int) -> None:
        """Take `request` out of the queue and report `token_id` once it is buried deep enough."""
        state = self.state
        if request.request_id in state.completing:
            return
        state.completing.add(request.request_id)
        state.pending.pop(request.request_id, None)
        state.spawn(self._complete(request, token_id))

    async def _complete(self, request: MintRequest, token_id: int) -> None:
        state = self.state
        try:
            for attempt in range(_LOOKUP_ATTEMPTS):
                try:
                    receipt = await self.reads.existing_receipt(request.contract, request.request_id, token_id)
                    while (state.head or 0) < receipt.block_number + state.config.confirmations - 1:
                        await asyncio.sleep(state.config.poll_s)
                    (still,) = await self.reads.token_ids(request.contract, [request.request_id])
                    if still == token_id:
                        mismatch = await self._mismatch(request, receipt)
                        if mismatch is not None:
                            state.fail(request, mismatch)
                        else:
                            state.resolve(request, receipt)
                        return
                    if still is None:
                        # A reorg took it away: mint it again.
                        state.requeue([request])
                        return
                except ChainError as exc:
                    log.info("looking up existing token %d: %s", token_id, exc)
                await asyncio.sleep(state.rpc.backoff(attempt))
            state.fail(request, RpcError(f"token {token_id} exists but its Minted event could not be read"))
        finally:
            state.completing.discard(request.request_id)

    async def _mismatch(self, request: MintRequest, receipt: MintReceipt) -> RequestIdReused | None:
        """Why the chain's token is not this request's, or None when it is."""
        if receipt.recipient.lower() != request.recipient.lower():
            return RequestIdReused(
                f"request id {request.request_id.hex()[:12]} already minted token {receipt.token_id} "
                f"to another recipient than {request.recipient}"
            )
        if await self.reads.minted_uri(request.contract, receipt) != request.token_uri:
            return RequestIdReused(
                f"request id {request.request_id.hex()[:12]} already minted token {receipt.token_id} "
                "with other metadata than this request's"
            )
        return None
