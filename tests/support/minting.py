"""The minter against a test chain: requests to mint, a fresh contract, a running minter, the chain's own view."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from chain.contract import PersonaMint, deploy_persona_mint
from chain.contracts.build import load_baseline_artifact
from chain.dev_accounts import dev_account
from chain.journal import MintJournal
from chain.minter import Minter, MinterConfig
from chain.rpc import JsonRpc
from chain.token_uri import CODEC_RAW, token_uri
from chain.web3 import connect_web3

MINT_SKIPPED_TOPIC = "0x" + keccak(text="MintSkipped(bytes32,uint256)").hex()
MINTED_TOPIC = "0x" + keccak(text="Minted(bytes32,uint256,address)").hex()
_OWNER_OF = function_signature_to_4byte_selector("ownerOf(uint256)")
_TOKEN_URI = function_signature_to_4byte_selector("tokenURI(uint256)")
_TOKEN_ID_OF = function_signature_to_4byte_selector("tokenIdOf(bytes32)")
_TOTAL_MINTED = function_signature_to_4byte_selector("totalMinted()")

MintRequest = tuple[bytes, str, str]  # request_id, recipient, token_uri


def make_requests(count: int) -> list[MintRequest]:
    """Distinct request ids, fresh recipient wallets and distinct token URIs."""
    return [(os.urandom(32), Account.create().address, token_uri(os.urandom(32), CODEC_RAW)) for _ in range(count)]


async def deploy(url: str, *, max_supply: int = 0) -> str:
    """A fresh PersonaMint (admin dev 0, minter dev 1): token ids start at 1 for every test."""
    w3 = connect_web3(url)
    try:
        admin, minter = dev_account(0), dev_account(1)
        deployment = await deploy_persona_mint(
            w3, admin, name="Test", symbol="TEST", admin=admin.address, minter=minter.address, max_supply=max_supply
        )
        return deployment.address
    finally:
        await w3.provider.disconnect()


def deploy_baseline_v1(url: str) -> str:
    """The v1 contract the service replaced (benchmarks/baseline): a contract it must refuse."""
    artifact = load_baseline_artifact()
    w3 = Web3(Web3.HTTPProvider(url))
    admin = dev_account(0)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    args = ("V1", "V1", admin.address, dev_account(1).address, "", "0x" + "00" * 20, 0, 0)
    tx_hash = factory.constructor(*args).transact({"from": admin.address})
    address: str = w3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"]
    return address


@contextlib.asynccontextmanager
async def running_minter(
    url: str, address: str, config: MinterConfig, *, journal: MintJournal | None = None
) -> AsyncIterator[Minter]:
    """A started minter signing as dev account 1 for the contract at `address`, stopped on exit."""
    rpc = JsonRpc(url, backoff_s=0.01, backoff_cap_s=0.5, timeout_s=5)
    w3 = connect_web3(url)
    minter = Minter(rpc, dev_account(1), PersonaMint(w3, address), config, journal=journal)
    await minter.start()
    try:
        yield minter
    finally:
        await minter.stop()
        await rpc.aclose()
        await w3.provider.disconnect()


class ChainView:
    """Batched reads of one contract straight from the node (no minter code involved)."""

    def __init__(self, url: str, address: str) -> None:
        self.rpc = JsonRpc(url)
        self.address = address

    async def close(self) -> None:
        await self.rpc.aclose()

    async def _calls(self, datas: Sequence[bytes]) -> list[bytes]:
        results = []
        for start in range(0, len(datas), 200):
            chunk = datas[start : start + 200]
            answers = await self.rpc.batch(
                [("eth_call", [{"to": self.address, "data": "0x" + data.hex()}, "latest"]) for data in chunk]
            )
            results += [bytes.fromhex(answer[2:]) for answer in answers]
        return results

    async def owners(self, token_ids: Sequence[int]) -> list[str]:
        answers = await self._calls([_OWNER_OF + token.to_bytes(32, "big") for token in token_ids])
        return [to_checksum_address(answer[12:32]) for answer in answers]

    async def token_uris(self, token_ids: Sequence[int]) -> list[str]:
        answers = await self._calls([_TOKEN_URI + token.to_bytes(32, "big") for token in token_ids])
        return [abi_decode(["string"], answer)[0] for answer in answers]

    async def token_ids_of(self, request_ids: Sequence[bytes]) -> list[int]:
        answers = await self._calls([_TOKEN_ID_OF + rid for rid in request_ids])
        return [int.from_bytes(answer, "big") for answer in answers]

    async def total_minted(self) -> int:
        (answer,) = await self._calls([_TOTAL_MINTED])
        return int.from_bytes(answer, "big")

    async def logs(self, topic: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.rpc.call(
            "eth_getLogs", [{"address": self.address, "topics": [topic], "fromBlock": "0x0", "toBlock": "latest"}]
        )
        return found


async def assert_minted_exactly(view: ChainView, requests: Sequence[MintRequest], token_ids: Sequence[int]) -> None:
    """Each request has exactly one token, owned by its recipient, carrying its URI; nothing else minted."""
    assert len(set(token_ids)) == len(requests), "duplicate token ids"
    assert await view.total_minted() == len(requests), "the contract minted a different number of tokens"
    assert await view.token_ids_of([rid for rid, _, _ in requests]) == list(token_ids)
    assert await view.owners(token_ids) == [recipient for _, recipient, _ in requests]
    assert await view.token_uris(token_ids) == [uri for _, _, uri in requests]
    minted_events = await view.logs(MINTED_TOPIC)
    assert len(minted_events) == len(requests), "a Minted event per token, no more"


def assert_minted_once(rpc_url: str, address: str, jobs: list[dict[str, Any]], *, owners: bool = False) -> None:
    """Each confirmed job (as `GET /v1/mints/{id}` shows it) is one token on chain: distinct token
    ids, `totalMinted` equal to the jobs, `tokenIdOf(request id)` each job's; `owners`: and owned by
    its recipient."""

    async def check() -> None:
        view = ChainView(rpc_url, address)
        try:
            token_ids = [int(str(job["token_id"])) for job in jobs]
            assert len(set(token_ids)) == len(jobs)
            assert await view.total_minted() == len(jobs)
            request_ids = [bytes.fromhex(str(job["request_id"])[2:]) for job in jobs]
            assert await view.token_ids_of(request_ids) == token_ids
            if owners:
                assert await view.owners(token_ids) == [str(job["recipient"]) for job in jobs]
        finally:
            await view.close()

    asyncio.run(check())
