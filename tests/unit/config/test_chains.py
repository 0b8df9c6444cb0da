"""Chain routes: each collection's chain, RPC URLs, contract, confirmations, fee ceiling and mint queue."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from config.chains import DEFAULT_CHAIN, ChainRouteError, chain_routes
from config.collections import ChainConfig, CollectionConfig, DeploymentConfig, load_collection_config
from config.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT = load_collection_config(PROJECT_ROOT / "collections" / "default.toml")
A = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
B = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
GWEI = 10**9


def _collection(collection_id: str, chain: ChainConfig | None, contract: str | None = None) -> CollectionConfig:
    return replace(DEFAULT, id=collection_id, chain=chain, deployment=DeploymentConfig(contract_address=contract))


def _settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def test_collections_without_their_own_chain_share_the_default_route_and_its_queue() -> None:
    settings = _settings(rpc_url="http://127.0.0.1:8545", chain_id=31337, contract_address=A)
    configs = {
        "one": _collection("one", ChainConfig(chain_id=31337)),
        "two": _collection("two", None),
    }
    routes = chain_routes(settings, configs)
    assert list(routes.chains) == [DEFAULT_CHAIN]
    route = routes.default
    assert route.mint_queue == "pm-mint"
    assert route.rpc_urls == ("http://127.0.0.1:8545",)
    assert route.contracts == (A,)
    assert routes.chain_for("one") is route
    assert routes.chain_for("two") is route
    assert routes.chain_for("never-configured") is route  # an old job's collection
    assert routes.minter_chain(None) is route
    assert routes.minter_chain(31337) is route


def test_a_collection_on_another_chain_gets_its_own_route_urls_contract_and_queue() -> None:
    settings = _settings(rpc_url="http://a:8545", chain_id=31337, contract_address=A)
    configs = {
        "one": _collection("one", ChainConfig(chain_id=31337)),
        "base": _collection(
            "base", ChainConfig(chain_id=8453, rpc_urls=("https://primary", "https://fallback")), contract=B
        ),
    }
    routes = chain_routes(settings, configs)
    base = routes.chain_for("base")
    assert base.key == "8453"
    assert base.chain_id == 8453
    assert base.mint_queue == "pm-mint:8453"
    assert base.mint_queue != routes.default.mint_queue
    assert base.rpc_urls == ("https://primary", "https://fallback")  # first primary, the rest fallbacks
    assert base.contracts == (B,)
    assert routes.for_collection("base").contract_address == B
    assert routes.for_collection("one").contract_address == A
    assert routes.minter_chain(8453) is base
    with pytest.raises(ChainRouteError, match="no collection mints on chain 10"):
        routes.minter_chain(10)


def test_personamint_chains_fills_what_a_file_leaves_out() -> None:
    settings = _settings(
        rpc_url="http://a:8545",
        chain_id=31337,
        chains={31338: {"rpc_url": "http://b:8546", "contract_address": B.lower(), "deploy_block": 7}},
    )
    configs = {"b": _collection("b", ChainConfig(chain_id=31338))}
    route = chain_routes(settings, configs).chain_for("b")
    assert route.rpc_urls == ("http://b:8546",)
    assert route.contracts == (B,)  # checksummed by the setting
    assert route.deploy_block == 7


def test_a_file_url_comes_before_the_setting_and_both_are_kept() -> None:
    settings = _settings(rpc_url="http://a:8545", chain_id=31337, chains={31338: {"rpc_url": "http://b:8546"}})
    configs = {"b": _collection("b", ChainConfig(chain_id=31338, rpc_urls=("http://file:1",)), contract=B)}
    assert chain_routes(settings, configs).chain_for("b").rpc_urls == ("http://file:1", "http://b:8546")


def test_two_collections_on_one_chain_share_it_with_the_strictest_confirmations_and_lowest_fee_ceiling() -> None:
    settings = _settings(rpc_url="http://a:8545", chain_id=1, confirmations=2, fee_ceiling_gwei=500)
    configs = {
        "x": _collection(
            "x", ChainConfig(chain_id=10, rpc_urls=("http://op",), confirmations=5, max_fee_per_gas_wei=80 * GWEI), A
        ),
        "y": _collection(
            "y", ChainConfig(chain_id=10, rpc_urls=("http://op",), confirmations=3, max_fee_per_gas_wei=40 * GWEI), B
        ),
    }
    routes = chain_routes(settings, configs)
    assert routes.chain_for("x") is routes.chain_for("y")
    route = routes.chain_for("x")
    assert route.confirmations == 5
    assert route.max_fee_per_gas_wei == 40 * GWEI
    assert route.contracts == (A, B)
    assert route.rpc_urls == ("http://op",)


def test_the_service_fee_ceiling_bounds_a_collection_that_allows_more() -> None:
    settings = _settings(rpc_url="http://a:8545", chain_id=1, fee_ceiling_gwei=20)
    configs = {"x": _collection("x", ChainConfig(chain_id=1, max_fee_per_gas_wei=100 * GWEI))}
    assert chain_routes(settings, configs).default.max_fee_per_gas_wei == 20 * GWEI


def test_a_chain_with_no_url_anywhere_is_refused_with_what_to_set() -> None:
    settings = _settings(rpc_url="http://a:8545", chain_id=31337)
    configs = {"orphan": _collection("orphan", ChainConfig(chain_id=999))}
    with pytest.raises(ChainRouteError, match=r"orphan is on chain 999.*PERSONAMINT_CHAINS"):
        chain_routes(settings, configs)


def test_without_a_configured_chain_id_a_urlless_collection_is_on_the_rpc_url_chain() -> None:
    settings = _settings(rpc_url="http://a:8545")
    configs = {"one": _collection("one", ChainConfig(chain_id=31337))}
    routes = chain_routes(settings, configs)
    assert list(routes.chains) == [DEFAULT_CHAIN]
    assert routes.default.chain_id == 31337


def test_urlless_collections_naming_two_chains_on_one_rpc_url_are_refused() -> None:
    settings = _settings(rpc_url="http://a:8545")
    configs = {
        "one": _collection("one", ChainConfig(chain_id=31337)),
        "two": _collection("two", ChainConfig(chain_id=31338)),
    }
    with pytest.raises(ChainRouteError, match="PERSONAMINT_CHAIN_ID"):
        chain_routes(settings, configs)
