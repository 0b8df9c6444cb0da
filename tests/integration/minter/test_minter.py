"""The minter against a real anvil: concurrency, interval mining, reorgs, fees, stalls, bad items, balance."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector

from chain.contract import MINTER_ROLE, PersonaMint, deploy_persona_mint, send_transaction
from chain.dev_accounts import dev_account
from chain.errors import ContractRevert, InsufficientFunds, MaxSupplyReached, MissingRole
from chain.fees import GWEI, FeeCeilingExceeded, FeePolicy
from chain.minter import Minter, MinterConfig, MintProgress, MintReceipt, RequestIdReused
from chain.rpc import JsonRpc
from chain.web3 import connect_web3
from devstack.anvil import AnvilProcess
from tests.support.chain import cid_uri
from tests.support.minting import (
    MINT_SKIPPED_TOPIC,
    ChainView,
    assert_minted_exactly,
    deploy,
    make_requests,
    running_minter,
)
from tests.support.polling import wait_until


def no_skips_or_reverts(minter: Minter) -> None:
    assert minter.stats.skipped == 0, "the minter sent a request the chain had already minted"
    assert minter.stats.reverted_txs == 0
    assert minter.stats.failed == 0


FAST = MinterConfig(poll_s=0.02, missing_grace_s=0.5, stall_s=5.0)


async def test_500_concurrent_requests_become_500_distinct_tokens(anvil: AnvilProcess) -> None:
    address = await deploy(anvil.url)
    requests = make_requests(500)
    view = ChainView(anvil.url, address)
    async with running_minter(anvil.url, address, FAST) as minter:
        calls = [minter.mint(*request) for request in requests]
        # Callers repeat themselves (retried jobs): the same request joins the one in flight.
        repeats = [minter.mint(*request) for request in requests[:50]]
        receipts = await asyncio.wait_for(asyncio.gather(*calls), 120)
        again = await asyncio.wait_for(asyncio.gather(*repeats), 30)
        no_skips_or_reverts(minter)
        assert minter.stats.txs_sent <= 500 // 10, "requests that arrive together share transactions"
        assert minter.health().in_flight_txs == 0
    assert [r.token_id for r in again] == [r.token_id for r in receipts[:50]]
    assert all(not r.already_minted for r in receipts)
    assert [r.recipient for r in receipts] == [recipient for _, recipient, _ in requests]
    await assert_minted_exactly(view, requests, [r.token_id for r in receipts])
    assert await view.logs(MINT_SKIPPED_TOPIC) == []
    await view.close()


async def test_interval_mining_with_two_confirmations() -> None:
    async with AnvilProcess(block_time=0.5) as node:
        address = await deploy(node.url)
        requests = make_requests(500)
        view = ChainView(node.url, address)
        config = MinterConfig(poll_s=0.05, confirmations=2, missing_grace_s=2.0, stall_s=10.0)
        async with running_minter(node.url, address, config) as minter:
            receipts = await asyncio.wait_for(asyncio.gather(*(minter.mint(*r) for r in requests)), 120)
            head = int(await view.rpc.call("eth_blockNumber"), 16)
            no_skips_or_reverts(minter)
        # Confirmed means buried: at least one block on top when the caller heard of it.
        assert all(receipt.block_number < head for receipt in receipts)
        await assert_minted_exactly(view, requests, [r.token_id for r in receipts])
        assert await view.logs(MINT_SKIPPED_TOPIC) == []
        await view.close()


@pytest.mark.parametrize("rewind", ["anvil_reorg", "evm_revert"])
async def test_a_reorg_that_drops_a_mined_mint_puts_it_back_in_flight(rewind: str) -> None:
    async with AnvilProcess() as node:
        address = await deploy(node.url)
        view = ChainView(node.url, address)
        snapshot = await view.rpc.call("evm_snapshot")
        requests = make_requests(20)
        mined: list[str] = []

        async def watch(progress: MintProgress) -> None:
            if progress.state == "mined" and progress.tx_hash:
                mined.append(progress.tx_hash)

        config = MinterConfig(poll_s=0.02, confirmations=3, missing_grace_s=0.3)
        async with running_minter(node.url, address, config) as minter:
            tasks = [asyncio.create_task(minter.mint(*r, on_progress=watch)) for r in requests]
            await wait_until(lambda: len(mined) == len(requests), 30, "every mint mined")
            found = await view.rpc.batch([("eth_getTransactionReceipt", [tx]) for tx in set(mined)])
            first_block = min(int(receipt["blockNumber"], 16) for receipt in found)
            assert not any(task.done() for task in tasks), "3 confirmations: nothing is final yet"
            if rewind == "anvil_reorg":
                head = int(await view.rpc.call("eth_blockNumber"), 16)
                await view.rpc.call("anvil_reorg", [head - first_block + 1, []])
            else:
                await view.rpc.call("evm_revert", [snapshot])
            assert await view.total_minted() == 0, "the rewind took the tokens away"
            await wait_until(lambda: minter.stats.reorgs >= 1, 20, "the minter to notice the reorg")
            # Automine re-mines the rebroadcast; bury it under two more blocks.
            while not all(task.done() for task in tasks):
                await view.rpc.call("evm_mine")
                await asyncio.sleep(0.1)
            receipts = [task.result() for task in tasks]
            no_skips_or_reverts(minter)
        await assert_minted_exactly(view, requests, [r.token_id for r in receipts])
        for receipt in receipts:
            canonical = await view.rpc.call("eth_getTransactionReceipt", [receipt.tx_hash])
            assert int(canonical["blockNumber"], 16) == receipt.block_number
        await view.close()


async def _spike_base_fee(view: ChainView, wei: int) -> None:
    await view.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(wei)])
    await view.rpc.call("evm_mine")


async def test_fees_above_the_ceiling_make_mints_wait_with_a_reason_then_resume() -> None:
    async with AnvilProcess() as node:
        address = await deploy(node.url)
        view = ChainView(node.url, address)
        await _spike_base_fee(view, 200 * GWEI)
        details: list[str] = []

        async def watch(progress: MintProgress) -> None:
            if progress.state == "waiting":
                details.append(progress.detail)

        config = MinterConfig(poll_s=0.02, fees=FeePolicy(ceiling_wei=50 * GWEI), fee_recheck_s=0.1)
        requests = make_requests(30)
        async with running_minter(node.url, address, config) as minter:
            tasks = [asyncio.create_task(minter.mint(*r, on_progress=watch)) for r in requests]
            await wait_until(lambda: len(details) >= len(requests), 10, "every request to report its wait")
            await asyncio.sleep(0.3)
            assert "ceiling" in details[0]
            assert not any(task.done() for task in tasks)
            assert minter.stats.txs_sent == 0
            assert minter.health().fee_wait is not None
            await _spike_base_fee(view, 1 * GWEI)
            receipts = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            assert minter.stats.fee_waits >= 1
            assert minter.health().fee_wait is None
            no_skips_or_reverts(minter)
        await assert_minted_exactly(view, requests, [r.token_id for r in receipts])
        await view.close()


async def test_fees_that_stay_above_the_ceiling_fail_with_fee_ceiling_after_the_max_wait() -> None:
    async with AnvilProcess() as node:
        address = await deploy(node.url)
        view = ChainView(node.url, address)
        await _spike_base_fee(view, 200 * GWEI)
        config = MinterConfig(poll_s=0.02, fees=FeePolicy(ceiling_wei=50 * GWEI), fee_recheck_s=0.1, max_fee_wait_s=0.5)
        (request,) = make_requests(1)
        async with running_minter(node.url, address, config) as minter:
            started = time.monotonic()
            with pytest.raises(FeeCeilingExceeded) as failure:
                await asyncio.wait_for(minter.mint(*request), 20)
            assert time.monotonic() - started >= 0.5
        assert failure.value.code == "fee_ceiling"
        assert "ceiling" in str(failure.value)
        assert await view.token_ids_of([request[0]]) == [0]
        await view.close()


async def test_one_bad_item_does_not_sink_the_others(anvil: AnvilProcess) -> None:
    address = await deploy(anvil.url)
    view = ChainView(anvil.url, address)
    requests = make_requests(20)
    bad = (os.urandom(32), "0x" + "00" * 20, cid_uri("bad"))  # ERC721 refuses the zero address
    async with running_minter(anvil.url, address, FAST) as minter:
        results = await asyncio.wait_for(
            asyncio.gather(*(minter.mint(*r) for r in [*requests[:7], bad, *requests[7:]]), return_exceptions=True),
            60,
        )
        assert minter.stats.skipped == minter.stats.reverted_txs == 0
    failure = results.pop(7)
    assert isinstance(failure, ContractRevert)
    assert failure.code == "reverted"
    assert "TransferToZeroAddress" in str(failure)
    receipts = [r for r in results if isinstance(r, MintReceipt)]
    await assert_minted_exactly(view, requests, [r.token_id for r in receipts])
    await view.close()


async def test_max_supply_mints_what_fits_and_fails_the_rest(anvil: AnvilProcess) -> None:
    address = await deploy(anvil.url, max_supply=10)
    view = ChainView(anvil.url, address)
    requests = make_requests(15)
    async with running_minter(anvil.url, address, FAST) as minter:
        results = await asyncio.wait_for(
            asyncio.gather(*(minter.mint(*r) for r in requests), return_exceptions=True), 60
        )
    minted = [r for r in results if isinstance(r, MintReceipt)]
    refused = [r for r in results if not isinstance(r, MintReceipt)]
    assert len(minted) == 10
    assert all(isinstance(error, MaxSupplyReached) and error.code == "max_supply_reached" for error in refused)
    assert await view.total_minted() == 10
    await view.close()


async def test_a_request_already_on_chain_completes_without_a_send(anvil: AnvilProcess) -> None:
    address = await deploy(anvil.url)
    (request,) = make_requests(1)
    w3 = connect_web3(anvil.url)
    outcome = await PersonaMint(w3, address).mint(dev_account(1), request[1], request[2], request[0])
    await w3.provider.disconnect()
    async with running_minter(anvil.url, address, FAST) as minter:
        receipt = await asyncio.wait_for(minter.mint(*request), 30)
        assert minter.stats.txs_sent == 0
    assert receipt.already_minted
    assert receipt.token_id == outcome.minted[0].token_id
    assert receipt.tx_hash == outcome.tx_hash
    assert receipt.recipient == request[1]


async def test_a_token_minted_for_another_request_under_the_same_id_is_never_claimed(anvil: AnvilProcess) -> None:
    # An id reused for another request (an idempotency key used again after its record expired):
    # the chain's token belongs to the first request, whoever owns it now and whatever its URI is now.
    address = await deploy(anvil.url)
    holder = dev_account(3)
    request_id, uri = os.urandom(32), cid_uri("first")
    w3 = connect_web3(anvil.url)
    contract = PersonaMint(w3, address)
    outcome = await contract.mint(dev_account(1), holder.address, uri, request_id)
    token_id = outcome.minted[0].token_id
    async with running_minter(anvil.url, address, FAST) as minter:
        other_recipient = make_requests(1)[0][1]
        with pytest.raises(RequestIdReused) as to_other:
            await asyncio.wait_for(minter.mint(request_id, other_recipient, uri), 30)
        assert to_other.value.code == "request_id_reused"
        with pytest.raises(RequestIdReused):
            await asyncio.wait_for(minter.mint(request_id, holder.address, cid_uri("other")), 30)
        assert minter.stats.txs_sent == 0

    # The first request itself, retried after its token moved on and its URI was replaced: still its token.
    transfer = function_signature_to_4byte_selector("transferFrom(address,address,uint256)") + abi_encode(
        ["address", "address", "uint256"], [holder.address, dev_account(4).address, token_id]
    )
    await send_transaction(w3, holder, {"to": address, "data": transfer})
    await send_transaction(
        w3, dev_account(1), {"to": address, "data": contract.update_token_uri_call_data(token_id, cid_uri("new"))}
    )
    async with running_minter(anvil.url, address, FAST) as minter:
        receipt = await asyncio.wait_for(minter.mint(request_id, holder.address, uri), 30)
        assert receipt.already_minted
        assert receipt.token_id == token_id
        # Asked again in the same minter (its memory of finished requests), another body still fails.
        with pytest.raises(RequestIdReused):
            await minter.mint(request_id, other_recipient, uri)
        assert minter.stats.txs_sent == 0
    await w3.provider.disconnect()


async def test_a_stalled_transaction_is_replaced_with_a_bumped_fee() -> None:
    async with AnvilProcess() as node:
        address = await deploy(node.url)
        view = ChainView(node.url, address)
        await view.rpc.call("evm_setAutomine", [False])
        sent: list[str] = []

        async def watch(progress: MintProgress) -> None:
            if progress.state == "sent" and progress.tx_hash:
                sent.append(progress.tx_hash)

        config = MinterConfig(poll_s=0.02, stall_s=0.5, stall_blocks=1000)
        (request,) = make_requests(1)
        async with running_minter(node.url, address, config) as minter:
            task = asyncio.create_task(minter.mint(*request, on_progress=watch))
            await wait_until(lambda: minter.stats.replacements >= 1, 15, "a replacement")
            await view.rpc.call("evm_mine")
            receipt = await asyncio.wait_for(task, 15)
            assert minter.stats.stalls >= 1
            # Progress listeners run as tasks of their own: the last "sent" may land just after the receipt.
            await wait_until(lambda: receipt.tx_hash in sent, 2, "the mined version's sent report")
        assert len(sent) >= 2
        # A replacement was mined, never the stalled original. Not always the last one sent: under
        # load a further replacement can be signed (and reported sent) just as the block lands.
        assert receipt.tx_hash in sent[1:]
        assert receipt.tx_hash != sent[0]
        first, last = await view.rpc.batch([("eth_getTransactionByHash", [h]) for h in (sent[0], sent[-1])])
        assert first is None, "the replacement took the original's place"
        assert int(last["maxFeePerGas"], 16) > 0
        await assert_minted_exactly(view, [request], [receipt.token_id])
        await view.close()


async def test_low_balance_is_reported_and_an_empty_signer_fails_insufficient_funds() -> None:
    async with AnvilProcess() as node:
        address = await deploy(node.url)
        rpc = JsonRpc(node.url)
        await rpc.call("anvil_setBalance", [dev_account(1).address, hex(10**12)])
        config = MinterConfig(poll_s=0.02, balance_check_s=0.05, low_balance_wei=10**17)
        (request,) = make_requests(1)
        async with running_minter(node.url, address, config) as minter:
            await wait_until(lambda: minter.health().low_balance, 10, "the low balance report")
            assert minter.stats.low_balance_alerts >= 1
            assert minter.health().balance_wei == 10**12
            with pytest.raises(InsufficientFunds) as failure:
                await asyncio.wait_for(minter.mint(*request), 20)
            assert failure.value.code == "insufficient_funds"
            assert minter.health().in_flight_txs == 0, "the refused nonce is free again"
        await rpc.aclose()


async def test_someone_else_using_the_key_does_not_wedge_the_nonce(anvil: AnvilProcess) -> None:
    address = await deploy(anvil.url)
    view = ChainView(anvil.url, address)
    requests = make_requests(40)
    signer = dev_account(1)
    async with running_minter(anvil.url, address, FAST) as minter:
        first = await asyncio.wait_for(asyncio.gather(*(minter.mint(*r) for r in requests[:20])), 30)
        nonce = int(await view.rpc.call("eth_getTransactionCount", [signer.address, "pending"]), 16)
        for offset in range(3):
            signed = signer.sign_transaction(
                {"to": signer.address, "value": 0, "gas": 21_000, "nonce": nonce + offset, "chainId": anvil.chain_id,
                 "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": GWEI}
            )  # fmt: skip
            await view.rpc.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        second = await asyncio.wait_for(asyncio.gather(*(minter.mint(*r) for r in requests[20:])), 30)
        no_skips_or_reverts(minter)
    await assert_minted_exactly(view, requests, [r.token_id for r in [*first, *second]])
    await view.close()


async def test_legacy_gas_price_transactions(anvil: AnvilProcess) -> None:
    # The contract needs Shanghai (PUSH0), so a pre-London anvil cannot host it; legacy pricing
    # is forced here, and detection from a block without baseFeePerGas is a unit test.
    address = await deploy(anvil.url)
    view = ChainView(anvil.url, address)
    requests = make_requests(30)
    config = MinterConfig(poll_s=0.02, fees=FeePolicy(legacy=True))
    async with running_minter(anvil.url, address, config) as minter:
        receipts = await asyncio.wait_for(asyncio.gather(*(minter.mint(*r) for r in requests)), 60)
        no_skips_or_reverts(minter)
    sent = await view.rpc.call("eth_getTransactionByHash", [receipts[0].tx_hash])
    assert int(sent["type"], 16) == 0
    assert int(sent["gasPrice"], 16) > 0
    await assert_minted_exactly(view, requests, [r.token_id for r in receipts])
    await view.close()


async def test_a_signer_without_the_minter_role_fails_every_request_at_once(anvil: AnvilProcess) -> None:
    w3 = connect_web3(anvil.url)
    admin = dev_account(0)
    deployment = await deploy_persona_mint(
        w3, admin, name="Test", symbol="TEST", admin=admin.address, minter=dev_account(2).address
    )
    await w3.provider.disconnect()
    requests = make_requests(5)
    async with running_minter(anvil.url, deployment.address, FAST) as minter:
        results = await asyncio.wait_for(
            asyncio.gather(*(minter.mint(*r) for r in requests), return_exceptions=True), 30
        )
        assert minter.stats.txs_sent == 0
    assert all(isinstance(error, MissingRole) and error.code == "missing_role" for error in results)


async def test_a_retry_asks_the_chain_first_and_leaves_out_a_request_minted_meanwhile() -> None:
    async with AnvilProcess() as node:
        address = await deploy(node.url)
        view = ChainView(node.url, address)
        w3 = connect_web3(node.url)
        other = dev_account(2)
        grant = function_signature_to_4byte_selector("grantRole(bytes32,address)") + abi_encode(
            ["bytes32", "address"], [MINTER_ROLE, other.address]
        )
        await send_transaction(w3, dev_account(0), {"to": address, "data": grant})
        (request,) = make_requests(1)
        await view.rpc.call("evm_setAutomine", [False])
        config = MinterConfig(poll_s=0.02, missing_grace_s=0.3)
        async with running_minter(node.url, address, config) as minter:
            task = asyncio.create_task(minter.mint(*request))
            signer = dev_account(1).address.lower()

            async def ours_in_pool() -> str:
                while True:
                    pending = (await view.rpc.call("txpool_content")).get("pending", {})
                    for sender, by_nonce in pending.items():
                        if sender.lower() == signer:
                            return str(next(iter(by_nonce.values()))["hash"])
                    await asyncio.sleep(0.02)

            ours = await asyncio.wait_for(ours_in_pool(), 10)
            await view.rpc.call("anvil_dropTransaction", [ours])
            # Another minter mints the same request while ours is out of the pool.
            contract = PersonaMint(w3, address)
            signed = other.sign_transaction(
                {"to": address, "data": contract.mint_call_data(request[1], request[2], request[0]), "value": 0,
                 "gas": 500_000, "nonce": 0, "chainId": node.chain_id, "maxFeePerGas": 100 * GWEI,
                 "maxPriorityFeePerGas": GWEI}
            )  # fmt: skip
            theirs = await view.rpc.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
            await view.rpc.call("evm_mine")
            await view.rpc.call("evm_setAutomine", [True])
            receipt = await asyncio.wait_for(task, 20)
            assert minter.stats.replacements >= 1
            assert minter.stats.skipped == 0
        await w3.provider.disconnect()
        assert receipt.already_minted
        assert receipt.tx_hash == theirs
        assert await view.total_minted() == 1
        assert await view.logs(MINT_SKIPPED_TOPIC) == [], "the retry did not send the minted request again"
        await view.close()
