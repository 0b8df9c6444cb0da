"""What the minter asks the chain (nonces, tokenIdOf, receipts, gas) and the mintBatch call data it asks about."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.contract import PersonaMint, decode_revert
from chain.errors import ChainError, ContractRevert, InsufficientFunds, RpcError
from chain.minter.config import MintReceipt
from chain.minter.state import MinterState, MintRequest
from chain.rpc import RpcCallError

MINTED_TOPIC = "0x" + keccak(text="Minted(bytes32,uint256,address)").hex()
_TOKEN_ID_OF = function_signature_to_4byte_selector("tokenIdOf(bytes32)")
_TOKEN_URI = function_signature_to_4byte_selector("tokenURI(uint256)")
# Per-batch JSON-RPC request size: big enough to amortise a round trip, small enough for providers.
_RPC_CHUNK = 200


def as_int(value: Any) -> int:
    """A JSON-RPC quantity ("0x1f") or a number as an int."""
    return int(value, 16) if isinstance(value, str) else int(value)


def revert_error(exc: RpcCallError) -> ChainError:
    """What a node's refusal of eth_estimateGas/eth_call/eth_sendRawTransaction means for a mint."""
    data = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else None
    message = exc.rpc_message.lower()
    if "insufficient funds" in message:
        return InsufficientFunds(exc.rpc_message)
    if data is not None and len(data) >= 10:
        return decode_revert(data)
    if "revert" in message:
        return ContractRevert(exc.rpc_message)
    return exc


class ChainReads:
    """The minter's reads, batched per JSON-RPC request where there are many."""

    def __init__(self, state: MinterState) -> None:
        self.state = state

    async def counts(self) -> tuple[int, int, int]:
        """The head block and the signer's latest and pending nonces, read together."""
        state = self.state
        head, latest, pending = await state.rpc.batch(
            [
                ("eth_blockNumber", []),
                ("eth_getTransactionCount", [state.account.address, "latest"]),
                ("eth_getTransactionCount", [state.account.address, "pending"]),
            ]
        )
        return as_int(head), as_int(latest), as_int(pending)

    async def token_ids(self, address: str, request_ids: Sequence[bytes]) -> list[int | None]:
        """tokenIdOf in the contract at `address` for many requests, batched: the check before every send."""
        answers: list[int | None] = []
        for start in range(0, len(request_ids), _RPC_CHUNK):
            chunk = request_ids[start : start + _RPC_CHUNK]
            calls = [
                ("eth_call", [{"to": address, "data": "0x" + (_TOKEN_ID_OF + rid).hex()}, "latest"]) for rid in chunk
            ]
            for result in await self.state.rpc.batch(calls):
                answers.append(as_int(result) or None)
        return answers

    async def receipts(self, hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        found: list[dict[str, Any] | None] = []
        for start in range(0, len(hashes), _RPC_CHUNK):
            chunk = hashes[start : start + _RPC_CHUNK]
            for result in await self.state.rpc.batch([("eth_getTransactionReceipt", [h]) for h in chunk]):
                found.append(result if isinstance(result, dict) else None)
        return found

    async def existing_receipt(self, address: str, request_id: bytes, token_id: int) -> MintReceipt:
        """The receipt of a token minted earlier in the contract at `address`, from its Minted event."""
        logs = await self.state.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": address,
                    "topics": [MINTED_TOPIC, "0x" + request_id.hex()],
                    "fromBlock": hex(self.state.config.logs_from_block),
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
            block_number=as_int(entry["blockNumber"]),
            gas_used=None,
            already_minted=True,
        )

    async def minted_uri(self, address: str, receipt: MintReceipt) -> str:
        """The URI a token was minted with: from its mint transaction's call data, so a later
        METADATA_ROLE `updateTokenURI` does not hide what the request asked for; the token's current
        `tokenURI` when that transaction is not a direct mint/mintBatch call (a contract wallet's).
        """
        tx = await self.state.rpc.call("eth_getTransactionByHash", [receipt.tx_hash])
        if isinstance(tx, dict) and str(tx.get("to") or "").lower() == address.lower():
            found = _uri_in_call_data(bytes.fromhex(str(tx.get("input") or "0x")[2:]), receipt.request_id)
            if found is not None:
                return found
        data = _TOKEN_URI + receipt.token_id.to_bytes(32, "big")
        answer = await self.state.rpc.call("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"])
        (uri,) = abi_decode(["string"], bytes.fromhex(str(answer)[2:]))
        return str(uri)

    def call_data(self, requests: Sequence[MintRequest]) -> bytes:
        """mintBatch call data for one contract's requests (a batch never mixes contracts)."""
        return self.state.contract_at(requests[0].contract).mint_batch_call_data(
            [request.recipient for request in requests],
            [request.token_uri for request in requests],
            [request.request_id for request in requests],
        )

    async def estimate(self, address: str, data: bytes) -> int:
        """Gas for a mintBatch call to `address`; a revert raises the decoded ContractRevert."""
        state = self.state
        call = {"from": state.account.address, "to": address, "data": "0x" + data.hex()}
        try:
            return as_int(await state.rpc.call("eth_estimateGas", [call]))
        except RpcCallError as exc:
            raise revert_error(exc) from None

    def gas_limit(self, estimate: int) -> int:
        return int(estimate * self.state.config.gas_margin) + 20_000


def _uri_in_call_data(data: bytes, request_id: bytes) -> str | None:
    """The URI `request_id` was minted with in mint/mintBatch/mintWithVoucher call data, or None if not found there."""
    for rid, _, uri in PersonaMint.minted_in_call_data(data):
        if rid == request_id:
            return uri
    return None
