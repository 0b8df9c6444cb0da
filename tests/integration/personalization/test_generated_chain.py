"""The generated chain (benchmarks/history's million-block node) answers like anvil for the same logs."""

from __future__ import annotations

import httpx

from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess
from personalization.cache import CachedHistory
from personalization.history import RpcHistorySource, history_rpc
from personalization.summary import HistorySummary
from tests.support.generated_chain import GeneratedChain
from tests.support.log_emitter import Chain, seed_small_history

ARCHIVE = ("--prune-history", "100000")


async def _summary(url: str, wallet: str, block: int) -> HistorySummary:
    async with history_rpc(url) as rpc:
        return await CachedHistory(RpcHistorySource(rpc, window=16, traces="off")).summary(wallet, block=block)


async def test_a_history_replayed_into_the_generated_chain_reads_the_same() -> None:
    with AnvilProcess(extra_args=ARCHIVE) as node:
        chain = Chain(node.url)
        try:
            seeded = seed_small_history(chain, dev_account(0).address)
            logs = chain.call("eth_getLogs", {"fromBlock": "0x0", "toBlock": hex(seeded.head)})
            balance = int(chain.call("eth_getBalance", seeded.wallet, hex(seeded.head)), 16)
        finally:
            chain.close()
        assert len(logs) > 30
        from_anvil = await _summary(node.url, seeded.wallet, seeded.head)

    generated = GeneratedChain(chain_id=31337, head=seeded.head)
    for log in logs:  # anvil answers in (block, log index) order
        generated.add_log(int(log["blockNumber"], 16), log["address"], log["topics"], log["data"])
    generated.set_account(seeded.wallet, seeded.funded_block, balance=balance)
    generated.head = seeded.head
    with generated:
        from_generated = await _summary(generated.url, seeded.wallet, seeded.head)
        # A method it does not serve is the JSON-RPC error a node gives (callers fall back on it).
        answer = httpx.post(generated.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_nope", "params": []})
        assert answer.json()["error"]["code"] == -32601
    assert from_generated == from_anvil
    assert from_anvil.first_activity_source == "state"
    assert from_anvil.first_activity_block == seeded.funded_block
