"""Requests the chain has already minted (found by tokenIdOf): confirm that token at depth and report it."""

from __future__ import annotations

import asyncio
import logging

from chain.errors import ChainError, RpcError
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
                    receipt = await self.reads.existing_receipt(request.request_id, token_id)
                    while (state.head or 0) < receipt.block_number + state.config.confirmations - 1:
                        await asyncio.sleep(state.config.poll_s)
                    (still,) = await self.reads.token_ids([request.request_id])
                    if still == token_id:
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
