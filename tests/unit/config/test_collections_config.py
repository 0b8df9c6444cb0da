"""Collection files: chain and deployment config validated with file + field in every error."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import ApiError
from api.routes.common import check_payer
from config.collections import (
    CollectionConfigError,
    collections_by_chain,
    load_collection_config,
    load_collection_configs,
    load_collections,
    record_deployment,
)
from jobs.model import Payer
from personalization.style import parse_style_dna

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT = PROJECT_ROOT / "collections" / "default.toml"
ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TX = "0x" + "ab" * 32


def _style_part() -> str:
    """The default file's identity and style sections, without its chain sections."""
    text = DEFAULT.read_text()
    return text[: text.index("\n# Where the collection lives")] + "\n"


def _style_only_sha256() -> str:
    """The DNA hash of the default file with its chain sections cut off: what tokens carried before."""
    return parse_style_dna(tomllib.loads(_style_part()), str(DEFAULT)).sha256()


def _write(tmp_path: Path, body: str, *, name: str = "c.toml", collection_id: str = "default") -> Path:
    text = _style_part().replace('id = "default"', f'id = "{collection_id}"')
    path = tmp_path / name
    path.write_text(text + body)
    return path


CHAIN = """
[chain]
chain_id = 8453
rpc_urls = ["https://mainnet.base.org", "${BASE_RPC}"]
confirmations = 3
max_fee_gwei = 0.5
explorer_url = "https://basescan.org/"
"""


def test_the_default_collection_loads_and_its_dna_hash_ignores_chain_sections() -> None:
    configs = load_collection_configs(PROJECT_ROOT / "collections", environ={})
    default = configs["default"]
    assert default.chain is not None
    assert default.chain.chain_id == 31337
    assert default.chain.rpc_urls == ()  # the service's own RPC
    assert not default.deployed
    assert default.deployment.contract_metadata is not None
    assert default.style_dna.sha256() == _style_only_sha256()
    assert load_collections(PROJECT_ROOT / "collections")["default"].sha256() == _style_only_sha256()


def test_a_full_chain_section(tmp_path: Path) -> None:
    body = (
        CHAIN
        + f"""
[deployment]
contract_address = "{ADDRESS.lower()}"
deployed_block = 123
deploy_tx = "{TX}"
admin = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
max_supply = 10000
royalty_receiver = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
royalty_bps = 750
contract_uri = "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
per_wallet_cap = 3
"""
    )
    config = load_collection_config(_write(tmp_path, body), environ={"BASE_RPC": "https://base.example/v2/KEY"})
    assert config.chain is not None
    assert config.chain.rpc_urls == ("https://mainnet.base.org", "https://base.example/v2/KEY")
    assert config.chain.rpc_url_labels[1] == "${BASE_RPC}"  # what may be printed
    assert config.chain.confirmations == 3
    assert config.chain.max_fee_per_gas_wei == 500_000_000
    assert config.chain.explorer_link("address", ADDRESS) == f"https://basescan.org/address/{ADDRESS}"
    deployment = config.deployment
    assert deployment.contract_address == ADDRESS  # checksummed
    assert (deployment.deployed_block, deployment.deploy_tx, deployment.max_supply) == (123, TX, 10000)
    assert (deployment.royalty_bps, deployment.per_wallet_cap) == (750, 3)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[chain]\nrpc_urls = []\n", "chain.chain_id is required"),
        ("[chain]\nchain_id = 0\n", "chain.chain_id must be an integer"),
        ("[chain]\nchain_id = true\n", "chain.chain_id must be an integer"),
        ('[chain]\nchain_id = 1\nrpc_urls = "https://x"\n', "chain.rpc_urls must be a list"),
        ('[chain]\nchain_id = 1\nrpc_urls = ["ftp://x"]\n', r"chain.rpc_urls\[0\] must be a URL"),
        ('[chain]\nchain_id = 1\nrpc_urls = ["https://x", "https://x"]\n', "same URL twice"),
        ('[chain]\nchain_id = 1\nrpc_urls = ["https://x/${MISSING_KEY}"]\n', r"\$\{MISSING_KEY\}, which is not set"),
        ("[chain]\nchain_id = 1\nconfirmations = 0\n", "chain.confirmations must be an integer 1..64"),
        ("[chain]\nchain_id = 1\nmax_fee_gwei = -1\n", "chain.max_fee_gwei must be positive"),
        ('[chain]\nchain_id = 1\nmax_fee_gwei = "10"\n', "chain.max_fee_gwei must be a number"),
        ("[chain]\nchain_id = 1\nmax_fee_gwei = 1e-12\n", "whole number of wei"),
        ("[chain]\nchain_id = 1\nmax_fee_gwei = inf\n", "finite number"),
        (
            '[chain]\nchain_id = 1\nrpc_url = "https://x"\n',
            "chain.rpc_url is not a known field; did you mean chain.rpc_urls",
        ),
        ('[chain]\nchain_id = 1\nexplorer_url = "etherscan"\n', "chain.explorer_url must be a URL"),
        ('[deployment]\ncontract_address = "0x1234"\n', "deployment.contract_address must be a 0x-prefixed"),
        (f'[deployment]\ncontract_address = "{ADDRESS}"\n', "needs a \\[chain\\] section"),
        (
            f'[chain]\nchain_id = 1\n[deployment]\ncontract_address = "{ADDRESS[:-1]}A"\n',
            "invalid EIP-55 checksum",
        ),
        ("[deployment]\nroyalty_bps = 500\n", "royalty_receiver is required"),
        ("[deployment]\nroyalty_bps = 10001\n", "deployment.royalty_bps must be an integer 0..10000"),
        ("[deployment]\nmax_supply = -1\n", "deployment.max_supply must be an integer >= 0"),
        ("[deployment]\nper_wallet_cap = 1.5\n", "deployment.per_wallet_cap must be an integer"),
        ('[deployment]\ncontract_uri = "javascript:alert(1)"\n', "deployment.contract_uri must be a URL"),
        ('[deployment]\ncontract_uri = "ipfs://x"\n[deployment.contract_metadata]\nname = "n"\n', "not both"),
        ('[deployment.contract_metadata]\ndescription = "no name"\n', "at least a name"),
        ('[deployment]\ndeploy_tx = "0x12"\n', "deploy_tx must be"),
        ("[deployment]\nmax_suply = 5\n", "did you mean deployment.max_supply"),
        ('[vouchers]\nenabled = "yes"\n', "vouchers.enabled must be true or false"),
        ("[vouchers]\nprice_wei = -1\n", "vouchers.price_wei must be an integer"),
        ("[vouchers]\nttl_s = 0\n", "vouchers.ttl_s must be an integer 1..2592000"),
        ("[vouchers]\nttl = 60\n", "did you mean vouchers.ttl_s"),
    ],
)
def test_each_bad_field_is_named_with_its_file(tmp_path: Path, body: str, field: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(CollectionConfigError, match=field) as caught:
        load_collection_config(path, environ={})
    assert str(caught.value).startswith(str(path))


def test_a_chain_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('chain = "mainnet"\n' + _style_part())
    with pytest.raises(CollectionConfigError, match=r"\[chain\] must be a table"):
        load_collection_config(path)


def test_style_errors_and_toml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('id = "x"\n[style\n')
    with pytest.raises(CollectionConfigError, match=re.escape(str(path))):
        load_collection_config(path)
    path.write_text('id = "x"\n')
    with pytest.raises(CollectionConfigError, match=re.escape(str(path))):
        load_collection_config(path)


def test_duplicates_across_files_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "", name="a.toml")
    _write(tmp_path, "", name="b.toml")
    with pytest.raises(CollectionConfigError, match="defined twice"):
        load_collection_configs(tmp_path)
    (tmp_path / "b.toml").unlink()
    deployed = f'[chain]\nchain_id = 1\n[deployment]\ncontract_address = "{ADDRESS}"\n'
    _write(tmp_path, deployed, name="a.toml", collection_id="first")
    _write(tmp_path, deployed, name="b.toml", collection_id="second")
    with pytest.raises(CollectionConfigError, match="also used by"):
        load_collection_configs(tmp_path)
    with pytest.raises(CollectionConfigError, match="no collection files"):
        load_collection_configs(tmp_path / "empty")


def test_collections_group_by_chain(tmp_path: Path) -> None:
    _write(tmp_path, "[chain]\nchain_id = 1\n", name="a.toml", collection_id="a")
    _write(tmp_path, "[chain]\nchain_id = 8453\n", name="b.toml", collection_id="b")
    _write(tmp_path, "[chain]\nchain_id = 1\n", name="c.toml", collection_id="c")
    _write(tmp_path, "", name="d.toml", collection_id="d")
    grouped = collections_by_chain(load_collection_configs(tmp_path))
    assert {chain: [c.id for c in group] for chain, group in grouped.items()} == {1: ["a", "c"], 8453: ["b"]}


def test_record_deployment_keeps_the_file_and_its_dna_hash(tmp_path: Path) -> None:
    path = tmp_path / "default.toml"
    original = DEFAULT.read_text()
    path.write_text(original)
    updated = record_deployment(path, contract_address=ADDRESS.lower(), deployed_block=42, deploy_tx=TX)
    assert updated.deployment.contract_address == ADDRESS
    assert updated.deployment.deployed_block == 42
    assert updated.style_dna.sha256() == _style_only_sha256()
    text = path.read_text()
    # Every original line is still there, comments included; three lines were added.
    assert [line for line in text.splitlines() if line not in original.splitlines()] == [
        f'contract_address = "{ADDRESS}"',
        "deployed_block = 42",
        f'deploy_tx = "{TX}"',
    ]
    # The same deployment again is a no-op on content; another address is refused.
    record_deployment(path, contract_address=ADDRESS, deployed_block=42, deploy_tx=TX)
    assert path.read_text() == text
    with pytest.raises(CollectionConfigError, match="already"):
        record_deployment(path, contract_address="0x" + "12" * 20, deployed_block=1, deploy_tx=TX)


def test_record_deployment_adds_a_missing_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "[chain]\nchain_id = 1\n")
    updated = record_deployment(path, contract_address=ADDRESS, deployed_block=7, deploy_tx=TX)
    assert updated.deployment.contract_address == ADDRESS
    assert path.read_text().rstrip().endswith(f'deploy_tx = "{TX}"')


def _toml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value != value * 0:  # inf: TOML spells it without repr's quirks
        return "inf" if value > 0 else "-inf"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    return repr(value)


@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(
        st.integers(),
        st.floats(allow_nan=False),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cc",)), max_size=20),
        st.booleans(),
    )
)
def test_any_scalar_in_a_numeric_field_is_accepted_or_named(
    tmp_path_factory: pytest.TempPathFactory, value: object
) -> None:
    path = _write(tmp_path_factory.mktemp("h"), f"[chain]\nchain_id = 1\nmax_fee_gwei = {_toml_scalar(value)}\n")
    errors: list[str] = []
    try:
        config = load_collection_config(path, environ={})
    except CollectionConfigError as exc:
        errors.append(str(exc))
    if errors:
        assert "max_fee_gwei" in errors[0]
        return
    assert config.chain is not None
    assert config.chain.max_fee_per_gas_wei is not None
    assert config.chain.max_fee_per_gas_wei > 0


def test_collector_paid_mints_follow_the_vouchers_table(tmp_path: Path) -> None:
    policy = load_collection_config(
        _write(tmp_path, "[vouchers]\nenabled = true\nprice_wei = 10\nttl_s = 600\n")
    ).vouchers
    assert (policy.enabled, policy.price_wei, policy.ttl_s) == (True, 10, 600)
    check_payer(policy, "default", Payer.COLLECTOR, 600)
    check_payer(policy, "default", Payer.SERVICE, None)
    with pytest.raises(ApiError) as too_long:
        check_payer(policy, "default", Payer.COLLECTOR, 601)
    assert (too_long.value.status, too_long.value.code) == (400, "invalid_voucher_ttl")
    absent = load_collection_config(_write(tmp_path, "", name="d.toml")).vouchers
    assert not absent.enabled
    with pytest.raises(ApiError) as refused:
        check_payer(absent, "default", Payer.COLLECTOR, None)
    assert (refused.value.status, refused.value.code) == (403, "collector_payment_unavailable")
    assert load_collection_configs(PROJECT_ROOT / "collections", environ={})["default"].vouchers.enabled
