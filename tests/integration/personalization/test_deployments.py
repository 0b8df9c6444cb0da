"""Deployments over real JSON-RPC: CREATE at any nonce, and factory / CREATE2 ones from anvil's traces."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess
from personalization.deployments import DeploymentScan, TraceMode, created_address, find_deployments
from personalization.history import RpcHistorySource, fetch_history, history_rpc
from tests.support.capping_proxy import CappingProxy
from tests.support.factory import (
    CREATE,
    CREATE2,
    CREATE_THEN_REVERT,
    DOOMED_CHILD,
    FACTORY_INIT,
    builder_init_code,
    call_factory,
    child_init_code,
    create2_address,
    deploy_code,
)
from tests.support.log_emitter import Chain

# Keeps historical state (debug mode finds the wallet's transactions by its historical nonce).
ARCHIVE = ("--prune-history", "100000")
# anvil's trace_filter refuses more than 300 blocks: spread the history wider than that.
GAP = 350


@dataclass(frozen=True)
class Deployer:
    """A wallet whose deployments the test knows, and the blocks where the factory ones happened."""

    wallet: str
    create: dict[int, str]  # nonce → contract, every plain CREATE the wallet sent
    factory_create: str  # the factory's CREATE, called by the wallet
    factory_create2: str  # the factory's CREATE2, called by the wallet
    constructor_child: str  # created by the constructor of a contract the wallet deployed
    create2_block: int
    head: int


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[AnvilProcess, Deployer]]:
    with AnvilProcess(extra_args=ARCHIVE) as anvil:
        chain = Chain(anvil.url)
        try:
            yield anvil, _deploy_everything(chain)
        finally:
            chain.close()


def _deploy_everything(chain: Chain) -> Deployer:
    wallet, stranger = dev_account(7).address, dev_account(8).address
    child = child_init_code()
    create: dict[int, str] = {}

    def deploy(code: bytes) -> str:
        nonce = chain.nonce(wallet)
        address = str(deploy_code(chain, wallet, code)["contractAddress"])
        assert address.lower() == created_address(wallet, nonce).lower()
        create[nonce] = created_address(wallet, nonce)
        return create[nonce]

    deploy(child)  # nonce 0
    chain.call("anvil_setNonce", wallet, hex(63))
    deploy(child)  # 63
    deploy(child)  # 64
    chain.call("anvil_setNonce", wallet, hex(200))
    deploy(child)  # 200
    chain.mine(GAP)
    factory = deploy(FACTORY_INIT)  # 201
    chain.mine(GAP)
    made = call_factory(chain, wallet, factory, CREATE, child)
    assert made["status"] == "0x1"
    factory_nonce = 1  # a contract's nonce starts at 1 (EIP-161)
    factory_create = created_address(factory, factory_nonce)
    chain.mine(GAP)
    made2 = call_factory(chain, wallet, factory, CREATE2, child, salt=7)
    assert made2["status"] == "0x1"
    create2_block = int(made2["blockNumber"], 16)
    # None of these leaves a contract the wallet deployed:
    reverted = call_factory(chain, wallet, factory, CREATE_THEN_REVERT, child)  # undone with the call
    assert reverted["status"] == "0x0"
    call_factory(chain, wallet, factory, CREATE, DOOMED_CHILD)  # self-destructs in its constructor
    call_factory(chain, stranger, factory, CREATE, child)  # someone else's factory call
    chain.receipt(chain.call("eth_sendTransaction", {"from": wallet, "to": stranger, "value": "0x1"}))
    builder = deploy(builder_init_code(child))  # a CREATE whose constructor CREATEs a child
    constructor_child = created_address(builder, 1)
    # A top-level CREATE that fails after its constructor CREATEd a child: neither exists.
    failed = chain.call(
        "eth_sendTransaction",
        {"from": wallet, "data": "0x" + builder_init_code(child, revert=True).hex(), "gas": "0x100000"},
    )
    assert chain.receipt(failed)["status"] == "0x0"
    chain.mine(3)
    return Deployer(
        wallet=wallet,
        create=create,
        factory_create=factory_create,
        factory_create2=create2_address(factory, 7, child),
        constructor_child=constructor_child,
        create2_block=create2_block,
        head=chain.head(),
    )


async def _scan(url: str, deployer: Deployer, traces: TraceMode, **ranges: int) -> DeploymentScan:
    span = {"nonce_from": 0, "nonce_to": 300, "from_block": 0, "to_block": deployer.head} | ranges
    async with history_rpc(url) as rpc:
        return await find_deployments(rpc, deployer.wallet, tag=hex(deployer.head), traces=traces, **span)


def _factory_set(deployer: Deployer) -> set[str]:
    return {deployer.factory_create, deployer.factory_create2, deployer.constructor_child}


async def test_create_deployments_at_any_nonce_without_traces(node: tuple[AnvilProcess, Deployer]) -> None:
    anvil, deployer = node
    assert sorted(deployer.create) == [0, 63, 64, 200, 201, 207]
    scan = await _scan(anvil.url, deployer, "off")
    assert set(scan.create) == set(deployer.create.values())
    assert scan.factory == ()
    assert scan.source == "create"
    assert scan.requests == 6  # 300 nonces, 50 per batch, and nothing else


@pytest.mark.parametrize("traces", ["trace_filter", "auto"])
async def test_trace_filter_finds_factory_and_create2_deployments(
    node: tuple[AnvilProcess, Deployer], traces: TraceMode
) -> None:
    anvil, deployer = node
    with CappingProxy(anvil.url) as proxy:
        scan = await _scan(proxy.url, deployer, traces)
    assert scan.source == "trace_filter"
    assert set(scan.create) == set(deployer.create.values())
    # CREATE inside a call, CREATE2 (at the address the salt predicts), a constructor's CREATE;
    # not the reverted ones (in a call, in a failed deployment), the self-destructed one or the stranger's.
    assert set(scan.factory) == _factory_set(deployer)
    assert scan.contracts == tuple(sorted(set(deployer.create.values()) | _factory_set(deployer)))
    # anvil caps trace_filter at 300 blocks: refused once, then windows many to a request.
    assert proxy.calls["trace_filter"] > deployer.head // 300
    assert proxy.calls["debug_traceTransaction"] == 0
    # trace_transaction only for the wallet's transactions with subcalls (factory calls, the builders).
    assert proxy.calls["trace_transaction"] == 6


async def test_debug_trace_finds_the_same_deployments(node: tuple[AnvilProcess, Deployer]) -> None:
    anvil, deployer = node
    with CappingProxy(anvil.url) as proxy:
        scan = await _scan(proxy.url, deployer, "debug")
    assert scan.source == "debug_traceTransaction"
    assert set(scan.factory) == _factory_set(deployer)
    assert set(scan.create) == set(deployer.create.values())
    assert proxy.calls["trace_filter"] == 0
    # Every transaction the wallet sent (12) is traced once; the blocks are found by nonce, not scanned.
    assert proxy.calls["debug_traceTransaction"] == 1 + 12  # the probe, then the transactions
    assert proxy.calls["eth_getBlockByNumber"] <= 14  # blocks where the nonce rose (anvil_setNonce too)


@pytest.mark.parametrize("traces", ["trace_filter", "debug"])
async def test_a_sub_range_returns_only_what_is_in_it(node: tuple[AnvilProcess, Deployer], traces: TraceMode) -> None:
    anvil, deployer = node
    scan = await _scan(anvil.url, deployer, traces, nonce_from=64, nonce_to=201, from_block=deployer.create2_block)
    assert scan.create == (deployer.create[64], deployer.create[200])
    assert set(scan.factory) == {deployer.factory_create2, deployer.constructor_child}
    before = await _scan(anvil.url, deployer, traces, nonce_from=0, nonce_to=64, to_block=deployer.create2_block - 1)
    assert set(before.create) == {deployer.create[0], deployer.create[63]}
    assert before.factory == (deployer.factory_create,)
    empty = await _scan(anvil.url, deployer, traces, nonce_from=209, nonce_to=209, from_block=deployer.head)
    assert empty.create == empty.factory == ()


async def test_history_lists_every_deployment_and_says_how(node: tuple[AnvilProcess, Deployer]) -> None:
    anvil, deployer = node
    everything = tuple(sorted(set(deployer.create.values()) | _factory_set(deployer)))
    async with history_rpc(anvil.url) as rpc:
        history = await fetch_history(rpc, deployer.wallet, block=deployer.head)
        plain = await RpcHistorySource(rpc, traces="off").fetch(deployer.wallet, block=deployer.head)
    assert history.deployed_contracts == everything
    assert history.deployments_source == "trace_filter"
    assert plain.deployed_contracts == tuple(sorted(deployer.create.values()))
    assert plain.deployments_source == "create"


async def test_a_wallet_with_nonce_10000_costs_at_most_200_requests_cold(
    node: tuple[AnvilProcess, Deployer],
) -> None:
    anvil, _ = node
    wallet = dev_account(9).address
    chain = Chain(anvil.url)
    try:
        chain.call("anvil_setNonce", wallet, hex(9_999))
        last = created_address(wallet, 9_999)
        deploy_code(chain, wallet, child_init_code())  # nonce 9,999 → 10,000
        head = chain.head()
    finally:
        chain.close()
    with CappingProxy(anvil.url) as proxy:
        async with history_rpc(proxy.url) as rpc:
            scan = await find_deployments(
                rpc, wallet, nonce_from=0, nonce_to=10_000, from_block=0, to_block=head, tag=hex(head), traces="off"
            )
    assert scan.create == (last,)
    assert proxy.calls["eth_getCode"] == 10_000
    assert proxy.http_requests == scan.requests == 200
