"""Send keyed mints from one hot signer: own nonce, pipelined sends, receipts, confirmations."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError

from chain.contract import PersonaMint
from chain.errors import ChainError, ContractRevert, InsufficientFunds, RequestAlreadyMinted, RpcError

log = logging.getLogger("personamint.minter")

MINTED_TOPIC = "0x" + keccak(text="Minted(bytes32,uint256,address)").hex()

_NONCE_ERRORS = (
    "nonce too low",
    "nonce too high",
    "already known",
    "replacement transaction underpriced",
    "invalid nonce",
)


class MintTimeout(ChainError):
    """A sent mint was not mined in time; the job is retried and resumes from the chain."""

    code = "mint_timeout"


@dataclass(frozen=True)
class MintReceipt:
    """A confirmed token: where it is and how it got there."""

    request_id: bytes
    token_id: int
    recipient: str
    tx_hash: str
    block_number: int
    gas_used: int | None
    already_minted: bool


class Minter:
    """One per (chain, signer). Sends are serialised only for nonce assignment; waits run concurrently."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        account: LocalAccount,
        contract: PersonaMint,
        *,
        confirmations: int = 1,
        poll_s: float = 0.1,
        receipt_timeout_s: float = 120.0,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.contract = contract
        self.confirmations = confirmations
        self.poll_s = poll_s
        self.receipt_timeout_s = receipt_timeout_s
        self.before_send = before_send
        self._nonce: int | None = None
        self._send_lock = asyncio.Lock()
        self._chain_id: int | None = None

    async def resync_nonce(self) -> int:
        self._nonce = await self.w3.eth.get_transaction_count(self.account.address, "pending")
        return self._nonce

    async def _fees(self) -> dict[str, int]:
        block = await self.w3.eth.get_block("latest")
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": await self.w3.eth.gas_price}
        priority = await self.w3.eth.max_priority_fee
        return {"maxFeePerGas": 2 * int(base_fee) + priority, "maxPriorityFeePerGas": priority}

    async def find_existing(self, request_id: bytes) -> MintReceipt | None:
        """The token already minted for request_id, read from the chain."""
        token_id = await self.contract.token_id_of(request_id)
        if token_id is None:
            return None
        logs = await self.w3.eth.get_logs(
            {
                "address": self.contract.address,  # type: ignore[typeddict-item]
                "topics": [MINTED_TOPIC, "0x" + request_id.hex()],
                "fromBlock": 0,
                "toBlock": "latest",
            }
        )
        if not logs:
            raise ChainError(f"token {token_id} has no Minted event")
        log_entry = logs[-1]
        return MintReceipt(
            request_id=request_id,
            token_id=token_id,
            recipient=to_checksum_address("0x" + bytes(log_entry["topics"][3])[12:].hex()),
            tx_hash="0x" + bytes(log_entry["transactionHash"]).hex(),
            block_number=int(log_entry["blockNumber"]),
            gas_used=None,
            already_minted=True,
        )

    async def _send(self, tx: dict[str, Any]) -> str:
        async with self._send_lock:
            if self._chain_id is None:
                self._chain_id = await self.w3.eth.chain_id
            for attempt in range(3):
                if self._nonce is None:
                    await self.resync_nonce()
                assert self._nonce is not None
                if self.before_send is not None:
                    await self.before_send()
                signed = self.account.sign_transaction(
                    {**tx, "nonce": self._nonce, "chainId": self._chain_id, "from": self.account.address}
                )
                try:
                    tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except Web3RPCError as exc:
                    message = str(exc).lower()
                    if "insufficient funds" in message:
                        raise InsufficientFunds("the signer cannot pay for gas") from None
                    if any(hint in message for hint in _NONCE_ERRORS) and attempt < 2:
                        log.warning("nonce error (%s); resyncing from the chain", message[:80])
                        self._nonce = None
                        continue
                    raise RpcError(f"send failed: {str(exc)[:200]}") from None
                self._nonce += 1
                return "0x" + bytes(tx_hash).hex()
        raise RpcError("send failed after nonce resyncs")

    async def wait_for_receipt(self, tx_hash: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.receipt_timeout_s
        while True:
            try:
                receipt = await self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
                if receipt is not None:
                    return dict(receipt)
            except TransactionNotFound:
                pass
            if time.monotonic() > deadline:
                raise MintTimeout(f"{tx_hash} not mined within {self.receipt_timeout_s:.0f}s")
            await asyncio.sleep(self.poll_s)

    async def wait_confirmations(self, block_number: int) -> None:
        while (await self.w3.eth.block_number) < block_number + self.confirmations - 1:
            await asyncio.sleep(self.poll_s)

    async def mint(
        self,
        request_id: bytes,
        recipient: str,
        token_uri: str,
        *,
        sent_tx: str | None = None,
        on_sent: Callable[[str], Awaitable[None]] | None = None,
    ) -> MintReceipt:
        """Mint once per request_id; safe to call again after any crash (pass the saved sent_tx)."""
        if sent_tx is not None:
            # A previous attempt sent this; if it is mined, its outcome decides.
            try:
                await self.w3.eth.get_transaction(sent_tx)  # type: ignore[arg-type]
                await self.wait_for_receipt(sent_tx)
            except TransactionNotFound:
                pass  # dropped: fall through to the chain check and resend
        existing = await self.find_existing(request_id)
        if existing is not None:
            await self.wait_confirmations(existing.block_number)
            return existing
        data = self.contract.mint_call_data(recipient, token_uri, request_id)
        tx: dict[str, Any] = {"to": self.contract.address, "data": data, "value": 0}
        try:
            gas = await self.w3.eth.estimate_gas({**tx, "from": self.account.address})  # type: ignore[typeddict-item]
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            error = self.contract.decode_error(getattr(exc, "data", None) or b"")
            if isinstance(error, RequestAlreadyMinted):
                found = await self.find_existing(request_id)
                if found is not None:
                    return found
            if "insufficient funds" in str(exc).lower():
                raise InsufficientFunds("the signer cannot pay for gas") from None
            raise error from None
        tx_hash = await self._send({**tx, "gas": int(gas * 1.2) + 10_000, **(await self._fees())})
        if on_sent is not None:
            await on_sent(tx_hash)
        mined = await self.wait_for_receipt(tx_hash)
        if mined["status"] != 1:
            found = await self.find_existing(request_id)
            if found is not None:
                return found
            raise ContractRevert(f"mint transaction {tx_hash} reverted")
        outcome = self.contract.parse_receipt(mined)
        mine = [m for m in outcome.minted if m.request_id == request_id]
        if not mine:
            raise ChainError(f"{tx_hash} mined without a Minted event for the request")
        await self.wait_confirmations(int(mined["blockNumber"]))
        return MintReceipt(
            request_id=request_id,
            token_id=mine[0].token_id,
            recipient=mine[0].to,
            tx_hash=tx_hash,
            block_number=int(mined["blockNumber"]),
            gas_used=int(mined["gasUsed"]),
            already_minted=False,
        )
