"""The minter through a fault-injecting JSON-RPC proxy: lost sends, 429s, a lying nonce, a dropped tx, a fee spike."""

from __future__ import annotations

import asyncio

from chain.dev_accounts import dev_account
from chain.fees import GWEI, FeePolicy
from chain.minter import MinterConfig, MintProgress
from chain.rpc import JsonRpc
from devstack.anvil import AnvilProcess
from tests.support.minting import (
    MINT_SKIPPED_TOPIC,
    ChainView,
    assert_minted_exactly,
    deploy,
    make_requests,
    running_minter,
)
from tests.support.polling import wait_until
from tests.support.rpc_proxy import Faults, RpcProxy


async def _drop_one_of_ours(rpc: JsonRpc) -> str:
    """anvil_dropTransaction on one of the signer's pending (not queued-behind-a-gap) transactions."""
    signer = dev_account(1).address.lower()
    while True:
        content = await rpc.call("txpool_content")
        for sender, by_nonce in content.get("pending", {}).items():
            if sender.lower() == signer:
                for tx in by_nonce.values():
                    if await rpc.call("anvil_dropTransaction", [tx["hash"]]) is not None:
                        return str(tx["hash"])
        await asyncio.sleep(0.02)


async def test_every_mint_completes_through_injected_faults() -> None:
    async with AnvilProcess() as node:
        address = await deploy(node.url)
        view = ChainView(node.url, address)
        faults = Faults(
            drop_send_rate=0.10,
            http_429_rate=0.10,
            http_502_rate=0.02,
            lost_reply_rate=0.05,
            delay_rate=0.02,
            delay_s=0.2,
            # On top of the rates, one of each for certain: a short run might roll none.
            drop_sends_next=1,
            lose_replies_next=1,
            seed=7,
        )
        config = MinterConfig(
            poll_s=0.05,
            max_batch=10,  # many small transactions: many sends for the faults to hit
            missing_grace_s=0.5,
            stall_s=3.0,
            fees=FeePolicy(ceiling_wei=50 * GWEI),
            fee_recheck_s=0.1,
        )
        requests = make_requests(230)
        waited: list[str] = []

        async def watch(progress: MintProgress) -> None:
            if progress.state == "waiting":
                waited.append(progress.detail)

        receipts = []
        async with RpcProxy(node.url, faults) as proxy, running_minter(proxy.url, address, config) as minter:
            # 1. Lost sends, 429s, 502s, lost replies, slow answers.
            batch = requests[:100]
            receipts += await asyncio.wait_for(asyncio.gather(*(minter.mint(*r) for r in batch)), 90)

            # 2. The node claims "nonce too low" once.
            faults.nonce_too_low = 1
            batch = requests[100:150]
            receipts += await asyncio.wait_for(asyncio.gather(*(minter.mint(*r) for r in batch)), 90)
            assert proxy.injected.nonce_too_low == 1

            # 3. A pending mint is dropped from the node's mempool.
            await view.rpc.call("evm_setAutomine", [False])
            batch = requests[150:200]
            tasks = [asyncio.create_task(minter.mint(*r)) for r in batch]
            dropped = await asyncio.wait_for(_drop_one_of_ours(view.rpc), 20)
            assert await view.rpc.call("eth_getTransactionByHash", [dropped]) is None
            await view.rpc.call("evm_setAutomine", [True])
            receipts += await asyncio.wait_for(asyncio.gather(*tasks), 90)

            # 4. Fees spike above the ceiling, then fall back.
            await view.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(200 * GWEI)])
            await view.rpc.call("evm_mine")
            batch = requests[200:]
            tasks = [asyncio.create_task(minter.mint(*r, on_progress=watch)) for r in batch]
            await wait_until(lambda: len(waited) >= len(batch), 20, "mints waiting for fees")
            assert not any(task.done() for task in tasks)
            await view.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
            await view.rpc.call("evm_mine")
            receipts += await asyncio.wait_for(asyncio.gather(*tasks), 90)

            stats = minter.stats
            injected = proxy.injected
        assert injected.dropped_sends, "the proxy dropped sends"
        assert injected.http_429 > 0
        assert injected.lost_replies > 0
        assert stats.rebroadcasts >= 1, "lost and dropped transactions were sent again"
        assert stats.nonce_errors >= 1
        assert stats.fee_waits >= 1
        assert "ceiling" in waited[0]
        assert stats.skipped == stats.reverted_txs == stats.failed == 0
        await assert_minted_exactly(view, requests, [r.token_id for r in receipts])
        assert await view.logs(MINT_SKIPPED_TOPIC) == []
        await view.close()
