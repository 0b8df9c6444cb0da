"""Block-true, incremental histories on anvil: a newer head reads only its new blocks and
answers exactly what a cold read at that head answers; a reorg of the cached block reads cold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess
from devstack.local import RedisServer
from personalization.cache import CachedHistory, HistoryCache
from personalization.history import RpcHistorySource, history_rpc
from personalization.orchestrator.rule_based import rule_based_params
from personalization.profile import build_profile
from personalization.registry import ContractRegistry
from personalization.style import load_style_dna
from personalization.summary import HistorySummary
from tests.support.capping_proxy import CappingProxy
from tests.support.log_emitter import Chain, fresh_address, init_code, seed_small_history

ARCHIVE = ("--prune-history", "100000")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def _send_from(chain: Chain, wallet: str, **tx: str) -> dict[str, object]:
    """A transaction the wallet itself sends (anvil impersonates it)."""
    return chain.receipt(chain.call("eth_sendTransaction", {"from": wallet, **tx}))


async def _cold(url: str, wallet: str, block: int) -> HistorySummary:
    async with history_rpc(url) as rpc:
        return await CachedHistory(RpcHistorySource(rpc)).summary(wallet, block=block)


async def test_a_newer_head_reads_only_its_blocks_and_equals_a_cold_read(redis_server: RedisServer) -> None:
    deployer = dev_account(0).address
    wallet = fresh_address("incremental-wallet")
    peer = fresh_address("incremental-peer")
    with AnvilProcess(extra_args=ARCHIVE) as node, CappingProxy(node.url, max_range=50) as proxy:
        chain = Chain(node.url)
        redis = Redis.from_url(redis_server.url)
        try:
            emitters = {kind: chain.deploy(deployer, kind) for kind in ("erc20", "erc721", "erc1155")}
            # Before the first read: NFTs and tokens arrive, but the wallet holds no ETH and sent
            # nothing (its age comes from its first log; no state footprint yet).
            chain.mine(30)
            chain.receipt(chain.emit(deployer, emitters["erc721"], peer, wallet, 1, 3))
            chain.mine(120)
            chain.receipt(chain.emit(deployer, emitters["erc20"], peer, wallet, 10, 2))
            chain.mine(5)
            first_head = chain.head()
            async with history_rpc(proxy.url) as rpc:
                service = CachedHistory(RpcHistorySource(rpc), HistoryCache(redis, head_ttl_s=0))
                before = await service.summary(wallet, block=first_head)
                assert before.first_activity_source == "logs"
                assert service.fetches == 1

                # After it: funded (the first footprint), it sends ETH, deploys a contract at nonce 1,
                # sends back one of its NFTs and gets an ERC-1155 item, across more blocks.
                chain.call("anvil_impersonateAccount", wallet)
                chain.mine(40)
                funded = chain.receipt(
                    chain.call("eth_sendTransaction", {"from": deployer, "to": wallet, "value": hex(10**18)})
                )
                chain.mine(60)
                _send_from(chain, wallet, to=peer, value=hex(1000))
                deployed = _send_from(chain, wallet, data="0x" + init_code("event").hex(), gas=hex(300_000))
                chain.receipt(chain.emit(deployer, emitters["erc721"], wallet, peer, 2, 1))
                chain.mine(70)
                chain.receipt(chain.emit(deployer, emitters["erc1155"], peer, wallet, 5, 2))
                chain.mine(3)
                second_head = chain.head()

                proxy.reset()
                after = await service.summary(wallet, block=second_head)
                assert (service.fetches, service.increments) == (1, 1)
                # Only the new blocks were scanned: (second_head - first_head) blocks in windows of 50.
                new_blocks = second_head - first_head
                assert proxy.calls["eth_getLogs"] <= 3 * (-(-new_blocks // 50) + 2)
                assert after == await _cold(node.url, wallet, second_head)
                assert after.nonce == 2
                assert [a.lower() for a in after.deployed_contracts] == [str(deployed["contractAddress"]).lower()]
                # The age is still the first log (the state footprint came later).
                assert after.first_activity_block == before.first_activity_block
                assert after.first_activity_block < int(str(funded["blockNumber"]), 16)
                by_kind = {c.kind: c for c in after.contracts}
                assert by_kind["erc721"].held == 2  # three came, one went back
                assert by_kind["erc1155"].held == 2
                assert after.block_number == second_head

                # A later read at the same block is a cached answer; a read at an older block is cold.
                assert await service.summary(wallet, block=second_head) == after
                assert service.increments == 1
        finally:
            await redis.aclose()
            chain.close()


async def test_a_reorged_cached_block_is_read_cold(redis_server: RedisServer) -> None:
    deployer = dev_account(0).address
    wallet = fresh_address("reorg-wallet")
    with AnvilProcess(extra_args=ARCHIVE) as node:
        chain = Chain(node.url)
        redis = Redis.from_url(redis_server.url)
        try:
            emitter = chain.deploy(deployer, "erc20")
            chain.receipt(chain.emit(deployer, emitter, fresh_address("a"), wallet, 1, 2))
            snapshot = chain.call("evm_snapshot")
            chain.receipt(chain.emit(deployer, emitter, fresh_address("b"), wallet, 3, 4))
            chain.mine(2)
            cached_head = chain.head()
            async with history_rpc(node.url) as rpc:
                service = CachedHistory(RpcHistorySource(rpc), HistoryCache(redis, head_ttl_s=0))
                stale = await service.summary(wallet, block=cached_head)
                assert sum(c.transfers_in for c in stale.contracts) == 6
                # The blocks after the snapshot are replaced by others: the cached block's hash changes.
                assert chain.call("evm_revert", snapshot)
                chain.receipt(chain.emit(deployer, emitter, fresh_address("c"), wallet, 9, 1))
                chain.mine(5)
                head = chain.head()
                assert head > cached_head
                fresh = await service.summary(wallet, block=head)
                assert service.fetches == 2  # cold again, not folded onto a block that is gone
                assert sum(c.transfers_in for c in fresh.contracts) == 3
                assert fresh == await _cold(node.url, wallet, head)
        finally:
            await redis.aclose()
            chain.close()


async def test_an_idle_wallet_keeps_its_params_as_the_chain_grows(redis_server: RedisServer) -> None:
    registry = ContractRegistry.builtin()
    dna = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
    with AnvilProcess(extra_args=ARCHIVE) as node:
        chain = Chain(node.url)
        redis = Redis.from_url(redis_server.url)
        try:
            seeded = seed_small_history(chain, dev_account(0).address)
            async with history_rpc(node.url) as rpc:
                service = CachedHistory(RpcHistorySource(rpc), HistoryCache(redis, head_ttl_s=0))
                params = set()
                for grow in (0, 190, 2_000):
                    chain.mine(grow)
                    head = chain.head()
                    for summary in (
                        await service.summary(seeded.wallet, block=head),
                        await _cold(node.url, seeded.wallet, head),
                    ):
                        assert summary.block_number == head
                        params.add(rule_based_params(build_profile(summary, registry), dna)[0])
                assert service.increments == 2
                assert len(params) == 1
        finally:
            await redis.aclose()
            chain.close()
