"""One minter, one signer, several contracts on one chain: one nonce space, a batch per contract, exactly once."""

from __future__ import annotations

import asyncio

import pytest

from chain.contract import PersonaMint
from chain.dev_accounts import dev_account
from chain.journal import MemoryJournal, TxRecord
from chain.minter import Minter, MinterConfig, RequestIdReused
from chain.rpc import JsonRpc
from chain.web3 import connect_web3
from devstack.anvil import AnvilProcess
from tests.support.minting import ChainView, assert_minted_exactly, deploy, make_requests


async def test_two_contracts_share_one_signer_and_its_nonces() -> None:
    async with AnvilProcess(block_time=0.5) as node:
        first, second = await deploy(node.url), await deploy(node.url)
        rpc = JsonRpc(node.url, backoff_s=0.01, backoff_cap_s=0.5, timeout_s=5)
        w3 = connect_web3(node.url)
        journal = MemoryJournal()
        minter = Minter(
            rpc,
            dev_account(1),
            PersonaMint(w3, first),
            MinterConfig(poll_s=0.02),
            journal=journal,
            contracts=[PersonaMint(w3, second)],
        )
        written: list[TxRecord] = []
        put = journal.put

        async def keep(record: TxRecord) -> None:
            written.append(record)
            await put(record)

        journal.put = keep  # type: ignore[method-assign]
        await minter.start()
        try:
            requests = make_requests(20)
            in_first, in_second = requests[0::2], requests[1::2]
            receipts = await asyncio.gather(
                *(minter.mint(*request) for request in in_first),  # the default contract
                *(minter.mint(*request, contract=second) for request in in_second),
            )
            # A request id is one mint: asked again for the other contract, it is refused.
            with pytest.raises(RequestIdReused):
                await minter.mint(*in_first[0], contract=second)
            # A contract this minter does not serve is refused before anything is queued.
            with pytest.raises(Exception, match="not one this minter mints in"):
                await minter.mint(*make_requests(1)[0], contract=dev_account(5).address)
        finally:
            await minter.stop()
        for address, batch, got in (
            (first, in_first, receipts[: len(in_first)]),
            (second, in_second, receipts[len(in_first) :]),
        ):
            view = ChainView(node.url, address)
            await assert_minted_exactly(view, batch, [receipt.token_id for receipt in got])
            await view.close()
        # Every transaction went to one contract only, and the journal says which (for a restart).
        assert written
        for record in written:
            assert {item.contract for item in record.items} in ({first}, {second})
            assert TxRecord.from_json(record.to_json()) == record
        # One nonce space: the signer's nonces are consecutive across both contracts' transactions.
        nonces = sorted({record.nonce for record in written})
        assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))
        assert int(await rpc.call("eth_getTransactionCount", [dev_account(1).address, "latest"]), 16) == len(nonces)
        await rpc.aclose()
        await w3.provider.disconnect()


def test_a_journal_record_from_before_several_contracts_still_reads() -> None:
    old = (
        '{"nonce":3,"items":[["' + "11" * 32 + '","0x' + "ab" * 20 + '","ipfs://x"]],"raw":"00",'
        '"hashes":["0x01"],"gas":21000,"fees":{"max_fee":1,"priority_fee":0,"legacy":true},"signed_at":1.0}'
    )
    (item,) = TxRecord.from_json(old).items
    assert item.contract is None  # restored into the minter's default contract
