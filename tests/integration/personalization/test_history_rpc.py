"""Wallet history over real JSON-RPC: anvil behind a provider-like proxy that caps eth_getLogs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess
from devstack.local import RedisServer
from personalization.cache import CachedHistory, HistoryCache
from personalization.history import RpcHistorySource, WalletHistory, fetch_history, history_rpc
from personalization.indexer import AlchemyHistorySource
from personalization.profile import build_profile
from personalization.registry import ContractRegistry, KnownContract
from tests.support.capping_proxy import CappingProxy
from tests.support.log_emitter import Chain, SeededWallet, fresh_address, seed_small_history

# Keeps historical state in memory (anvil's default drops it), so age comes from state.
ARCHIVE = ("--prune-history", "100000")


@pytest.fixture(scope="module")
def archive() -> Iterator[tuple[AnvilProcess, SeededWallet]]:
    with AnvilProcess(extra_args=ARCHIVE) as node:
        chain = Chain(node.url)
        try:
            seeded = seed_small_history(chain, dev_account(0).address)
        finally:
            chain.close()
        yield node, seeded


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(Path(tmp_path_factory.mktemp("history-redis"))) as server:
        yield server


def _movement(history: WalletHistory) -> list[tuple[object, ...]]:
    return sorted(
        (t.standard, t.direction, t.contract, t.counterparty, t.block_number, t.token_id, t.amount, t.tx_hash)
        for t in history.transfers
    )


async def _read(url: str, wallet: str, block: int, **kwargs: object) -> WalletHistory:
    async with history_rpc(url) as rpc:
        return await fetch_history(rpc, wallet, block=block, **kwargs)  # type: ignore[arg-type]


async def test_profile_counts_what_was_seeded(archive: tuple[AnvilProcess, SeededWallet]) -> None:
    node, seeded = archive
    history = await _read(node.url, seeded.wallet, seeded.head)
    registry = ContractRegistry([KnownContract(history.chain_id, seeded.emitters["event"], "Demo DEX", "defi")])
    profile = build_profile(history, registry, {"hours": 3})
    for name, value in seeded.expected.items():
        assert getattr(profile, name) == value, name
    assert profile.first_active_block == seeded.first_event_block
    assert profile.last_active_block == seeded.last_event_block
    assert profile.labels == {"defi": 6}
    assert profile.context == {"hours": 3}
    assert dict(profile.top_collections)[seeded.emitters["erc721"]] == 14
    assert dict(profile.top_tokens) == {seeded.emitters["erc20"]: 9}


async def test_first_activity_comes_from_historical_state(archive: tuple[AnvilProcess, SeededWallet]) -> None:
    node, seeded = archive
    history = await _read(node.url, seeded.wallet, seeded.head)
    # Funded (balance > 0) several blocks before any token event named it.
    assert seeded.funded_block < seeded.first_event_block
    assert history.first_activity_block == seeded.funded_block
    assert history.first_activity_source == "state"
    # A depth that starts after the funding still finds the earliest block it may look at.
    shallow = await _read(node.url, seeded.wallet, seeded.head, max_depth=seeded.head - seeded.funded_block - 2)
    assert shallow.first_activity_block == shallow.from_block
    assert shallow.first_activity_source == "state"


async def test_pruned_node_falls_back_to_logs_for_age() -> None:
    # A node that keeps the last 10 states (like a pruned full node): the state search gives up,
    # the logs answer.
    with AnvilProcess(extra_args=("--prune-history", "10")) as node:
        chain = Chain(node.url)
        try:
            seeded = seed_small_history(chain, dev_account(0).address, label="pruned")
        finally:
            chain.close()
        history = await _read(node.url, seeded.wallet, seeded.head)
    assert history.first_activity_source == "logs"
    assert history.first_activity_block == seeded.first_event_block
    assert len(history.transfers) == 27


@pytest.mark.parametrize(
    ("style", "max_range", "max_results"),
    [("geth", 10, None), ("alchemy", 7, None), ("bare", 10, None), ("geth", None, 6)],
)
async def test_capped_provider_still_yields_the_full_history(
    archive: tuple[AnvilProcess, SeededWallet], style: str, max_range: int | None, max_results: int | None
) -> None:
    node, seeded = archive
    reference = await _read(node.url, seeded.wallet, seeded.head)
    with CappingProxy(node.url, max_range=max_range, max_results=max_results, style=style) as proxy:  # type: ignore[arg-type]
        capped = await _read(proxy.url, seeded.wallet, seeded.head, window=10_000, concurrency=3)
    assert proxy.refused > 0, "the cap was never hit: the test proves nothing"
    assert _movement(capped) == _movement(reference)
    assert capped.interactions == reference.interactions
    assert len(capped.transfers) == 27
    assert 1 < proxy.max_inflight <= 3
    if style in ("geth", "alchemy") and max_range:
        # The message names a window that works: one refused batch (three filters), then none.
        assert proxy.refused == 3


async def test_second_profile_at_the_same_block_costs_no_rpc_call(
    archive: tuple[AnvilProcess, SeededWallet], redis_server: RedisServer
) -> None:
    node, seeded = archive
    redis = Redis.from_url(redis_server.url)
    try:
        await redis.flushdb()
        with CappingProxy(node.url, max_range=50) as proxy:
            async with history_rpc(proxy.url) as rpc:
                service = CachedHistory(RpcHistorySource(rpc), HistoryCache(redis, head_ttl_s=60))
                first = await service.summary(seeded.wallet)
                assert proxy.calls["eth_getLogs"] > 0
                proxy.reset()
                second = await service.summary(seeded.wallet)
                assert proxy.total_calls() == 0, dict(proxy.calls)
                assert second == first
                # Another process (a fresh service, same Redis) gets it from the cache too.
                other = CachedHistory(RpcHistorySource(rpc), HistoryCache(redis, head_ttl_s=0))
                third = await other.summary(seeded.wallet)
                assert proxy.calls["eth_getLogs"] == 0
                assert set(proxy.calls) <= {"eth_chainId", "eth_blockNumber"}
                assert third == first
                assert service.fetches == 1
                assert other.fetches == 0
                # A new block is a new key: read again.
                chain = Chain(node.url)
                chain.mine(1)
                chain.close()
                proxy.reset()
                await other.summary(seeded.wallet)
                assert proxy.calls["eth_getLogs"] > 0
    finally:
        await redis.aclose()


async def test_concurrent_requests_for_one_wallet_share_one_fetch(
    archive: tuple[AnvilProcess, SeededWallet],
) -> None:
    import asyncio

    node, seeded = archive
    with CappingProxy(node.url) as proxy:
        async with history_rpc(proxy.url) as rpc:
            service = CachedHistory(RpcHistorySource(rpc))
            summaries = await asyncio.gather(*(service.summary(seeded.wallet, block=seeded.head) for _ in range(5)))
    assert service.fetches == 1
    assert all(summary == summaries[0] for summary in summaries)
    assert proxy.calls["eth_getLogs"] == 3  # one window, three topic positions


async def test_alchemy_indexer_matches_the_log_scan(archive: tuple[AnvilProcess, SeededWallet]) -> None:
    node, seeded = archive
    reference = await _read(node.url, seeded.wallet, seeded.head)
    with CappingProxy(node.url) as proxy:
        async with history_rpc(proxy.url) as rpc:
            source = AlchemyHistorySource(rpc, page_size=4)
            indexed = await source.fetch(seeded.wallet, block=seeded.head)
    assert _movement(indexed) == _movement(reference)
    assert indexed.source == "alchemy"
    assert indexed.interactions == ()  # the transfers API does not report protocol events
    assert indexed.first_activity_block == seeded.funded_block
    assert proxy.calls["alchemy_getAssetTransfers"] >= 27 // 4
    assert proxy.calls["eth_getLogs"] == 0  # transfers came from the indexer, not a log scan


async def test_history_is_exactly_the_wallet_s_own() -> None:
    # On a fresh anvil, histories whose truth the test knows:
    # - a wallet that sent 70 plain transactions, then deployed a contract (nonce 70);
    # - a wallet whose address, read as a token id, names an unrelated NFT moved between two others.
    with AnvilProcess() as node:
        chain = Chain(node.url)
        try:
            builder, victim = dev_account(5).address, dev_account(6).address
            for _ in range(70):
                chain.receipt(chain.call("eth_sendTransaction", {"from": builder, "to": builder, "value": "0x0"}))
            deployed = chain.deploy(builder, "event")
            nft = chain.deploy(dev_account(0).address, "erc721")
            one, two = fresh_address("one"), fresh_address("two")
            chain.receipt(chain.emit(dev_account(0).address, nft, one, two, int(victim, 16), 1))
            head = chain.head()
        finally:
            chain.close()
        builder_history = await _read(node.url, builder, head)
        assert builder_history.nonce == 71
        assert builder_history.deployed_contracts == (deployed,)
        assert build_profile(builder_history, ContractRegistry([]), {}).contracts_deployed == 1
        victim_history = await _read(node.url, victim, head)
        assert victim_history.transfers == ()
        assert victim_history.interactions == ()
