"""`personamint deploy` and the start-up chain checks against a real anvil.

Roles end up where custody wants them, the address is written back, the chain id and
the keys are checked before anything is sent, and the signer balance watch alerts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.contract import PersonaMint
from chain.dev_accounts import dev_account
from chain.errors import ChainUnavailable
from cli.deploy import DeployError, deploy_collection, format_details, service_signer_address
from config.chain_check import (
    BalanceWatch,
    ChainIdMismatch,
    PublicDevKey,
    check_collection_chains,
    connect_rpc,
    refuse_public_dev_key,
    service_signer,
    web3_balance,
    webhook_alert,
)
from config.collections import CollectionConfig, load_collection_config, load_collection_configs
from config.settings import Settings
from devstack.anvil import AnvilProcess, free_port
from ipfs.cid import cid_for_bytes
from ipfs.pinning.local import LocalStore
from tests.support.pinning_servers import FakeServer, Recorded, Reply
from tests.support.webhook_receiver import assert_signed

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT = PROJECT_ROOT / "collections" / "default.toml"
PASSWORD = "deployer password"


def _collection(tmp_path: Path, chain: str, deployment: str = "", *, collection_id: str = "genesis") -> Path:
    text = DEFAULT.read_text()
    style = text[: text.index("\n# Where the collection lives")]
    style = style.replace('id = "default"', f'id = "{collection_id}"')
    path = tmp_path / f"{collection_id}.toml"
    path.write_text(f"{style}\n\n{chain}\n{deployment}")
    return path


def _chain(url: str, chain_id: int = 31337) -> str:
    return f'[chain]\nchain_id = {chain_id}\nrpc_urls = ["{url}"]\nexplorer_url = "https://explorer.example"\n'


@pytest_asyncio.fixture
async def w3(anvil: AnvilProcess) -> AsyncIterator[AsyncWeb3[Any]]:
    client: AsyncWeb3[Any] = AsyncWeb3(AsyncHTTPProvider(anvil.url))
    yield client
    await client.provider.disconnect()


async def _funded(w3: AsyncWeb3[Any]) -> LocalAccount:
    """A fresh key (not one of anvil's published ones) with 10 ETH."""
    account: LocalAccount = Account.create()
    await w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * 10**18)])  # type: ignore[arg-type]
    return account


async def test_deploy_puts_roles_where_custody_wants_them(tmp_path: Path, anvil: AnvilProcess) -> None:
    admin_key, deployer, minter = dev_account(2), dev_account(0), dev_account(1)
    deployment = (
        f'[deployment]\nadmin = "{admin_key.address}"\nmax_supply = 500\n'
        f'royalty_receiver = "{admin_key.address}"\nroyalty_bps = 250\ncontract_uri = "ipfs://bafycontract"\n'
    )
    path = _collection(tmp_path, _chain(anvil.url), deployment)
    result = await deploy_collection(load_collection_config(path), deployer=deployer, minter=minter.address)

    client: AsyncWeb3[Any] = AsyncWeb3(AsyncHTTPProvider(anvil.url))
    contract = PersonaMint(client, result.address)
    assert await contract.is_minter(minter.address)
    assert await contract.is_admin(admin_key.address)
    assert not await contract.is_admin(minter.address)
    assert not await contract.is_admin(deployer.address)
    assert not await contract.is_minter(deployer.address)
    assert await contract.max_supply() == 500
    assert await contract.royalty_info(1, 10_000) == (admin_key.address, 250)
    await client.provider.disconnect()

    # Written back, and the file still validates.
    reloaded = load_collection_config(path)
    assert reloaded.deployment.contract_address == result.address
    assert reloaded.deployment.deployed_block == result.block_number
    assert reloaded.deployment.deploy_tx == result.tx_hash

    # Explorer-ready: links, compiler settings, and constructor args that decode to what was configured.
    details = format_details(result)
    assert f"https://explorer.example/address/{result.address}" in details
    assert f"https://explorer.example/tx/{result.tx_hash}" in details
    assert "0.8.30" in details
    assert result.constructor_args in details
    name, symbol, admin, minter_address, uri, _receiver, bps, cap = abi_decode(
        ["string", "string", "address", "address", "string", "address", "uint96", "uint256"],
        bytes.fromhex(result.constructor_args[2:]),
    )
    assert (name, symbol, uri, bps, cap) == ("Persona Mint Genesis", "PMINT", "ipfs://bafycontract", 250, 500)
    assert (admin.lower(), minter_address.lower()) == (admin_key.address.lower(), minter.address.lower())

    with pytest.raises(DeployError, match="already deployed"):
        await deploy_collection(reloaded, deployer=deployer, minter=minter.address)


async def test_the_hot_key_may_neither_administer_nor_deploy(tmp_path: Path, anvil: AnvilProcess) -> None:
    config = load_collection_config(_collection(tmp_path, _chain(anvil.url)))
    hot = dev_account(1)
    with pytest.raises(DeployError, match="must not be the admin"):
        await deploy_collection(config, deployer=dev_account(0), minter=hot.address, admin=hot.address)
    with pytest.raises(DeployError, match="not the service signer"):
        await deploy_collection(config, deployer=hot, minter=hot.address, admin=dev_account(0).address)


async def test_public_dev_keys_are_refused_on_a_real_chain_before_anything_is_sent(tmp_path: Path) -> None:
    config = load_collection_config(_collection(tmp_path, _chain("http://127.0.0.1:1", chain_id=8453)))
    with pytest.raises(PublicDevKey, match="published dev keys"):
        await deploy_collection(config, deployer=dev_account(0), minter=Account.create().address)
    refuse_public_dev_key(dev_account(0).address, 31337)  # fine on anvil
    refuse_public_dev_key(Account.create().address, 1)  # fine: not a published key


async def test_a_wrong_chain_id_refuses_before_sending(tmp_path: Path, anvil: AnvilProcess, w3: AsyncWeb3[Any]) -> None:
    deployer = await _funded(w3)
    config = load_collection_config(_collection(tmp_path, _chain(anvil.url, chain_id=8453)))
    with pytest.raises(ChainIdMismatch, match="serves chain 31337, but chain 8453") as caught:
        await deploy_collection(config, deployer=deployer, minter=Account.create().address)
    assert caught.value.code == "chain_id_mismatch"
    assert await w3.eth.get_transaction_count(deployer.address) == 0


async def test_rpc_fallbacks_and_start_up_checks(tmp_path: Path, anvil: AnvilProcess, w3: AsyncWeb3[Any]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    url, client = await connect_rpc([dead, anvil.url], expected_chain_id=31337)
    assert url == anvil.url
    await client.provider.disconnect()
    with pytest.raises(ChainUnavailable, match="no RPC answered"):
        await connect_rpc([dead], expected_chain_id=31337, labels=["${SECRET_RPC}"])

    _collection(tmp_path, "[chain]\nchain_id = 31337\n", collection_id="local_one")
    _collection(tmp_path, f'[chain]\nchain_id = 31337\nrpc_urls = ["{dead}", "{anvil.url}"]\n', collection_id="two")
    configs = load_collection_configs(tmp_path)
    assert await check_collection_chains(configs, default_rpc_url=anvil.url) == {31337: anvil.url}
    _collection(tmp_path, "[chain]\nchain_id = 8453\n", collection_id="base")
    with pytest.raises(ChainIdMismatch, match="collection base"):
        await check_collection_chains(load_collection_configs(tmp_path), default_rpc_url=anvil.url)


class Receiver(FakeServer):
    def handle(self, request: Recorded) -> Reply:
        return 204, {}, b""


async def test_balance_watch_alerts_once_per_period_with_a_signed_webhook(w3: AsyncWeb3[Any]) -> None:
    signer = Account.create().address
    await w3.provider.make_request("anvil_setBalance", [signer, hex(5 * 10**15)])  # type: ignore[arg-type]
    now = [1000.0]
    with Receiver() as receiver:
        watch = BalanceWatch(
            web3_balance(w3),
            signer,
            chain_id=31337,
            threshold_wei=10**16,
            on_low=webhook_alert(receiver.url + "/alerts", secret="s3cret", allow_loopback=True),
            realert_s=600,
            clock=lambda: now[0],
        )
        assert watch.health()["status"] == "unknown"
        assert watch.metrics() == ""
        reading = await watch.check()
        assert reading.low
        assert reading.balance_wei == 5 * 10**15
        now[0] += 60
        await watch.check()  # still low, but alerted a minute ago
        assert len(receiver.requests) == 1
        now[0] += 600
        await watch.check()
        assert len(receiver.requests) == 2
        assert watch.alerts_sent == 2

    alert = receiver.requests[0]
    # Signed with the one outbound scheme: verified exactly as status webhooks are.
    assert_signed(alert, "s3cret")
    assert "personamint-signature" not in alert.headers
    body = json.loads(alert.body)
    assert body["type"] == "signer.balance_low"
    assert body["data"] == {**body["data"], "signer": signer, "balance_wei": str(5 * 10**15), "status": "low"}
    assert f'personamint_signer_balance_low{{chain_id="31337",address="{signer}"}} 1' in watch.metrics()

    # The receiver is gone: the alert fails, the check does not.
    await w3.provider.make_request("anvil_setBalance", [signer, hex(10**18)])  # type: ignore[arg-type]
    assert (await watch.check()).low is False
    assert watch.health()["status"] == "ok"
    await w3.provider.make_request("anvil_setBalance", [signer, hex(1)])  # type: ignore[arg-type]
    assert (await watch.check()).low
    assert watch.alerts_sent == 2


def test_the_deploy_command_end_to_end(tmp_path: Path, anvil: AnvilProcess) -> None:
    collections = tmp_path / "collections"
    collections.mkdir()
    deployment = (
        f'[deployment]\nadmin = "{dev_account(3).address}"\n\n'
        '[deployment.contract_metadata]\nname = "Genesis"\ndescription = "test"\n'
    )
    path = _collection(collections, "[chain]\nchain_id = 31337\n", deployment)
    keystore = tmp_path / "deployer.json"
    keystore.write_text(json.dumps(Account.encrypt(dev_account(0).key, PASSWORD, kdf="scrypt", iterations=2**4)))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    env = {
        **os.environ,
        "PERSONAMINT_ENV": "local",
        "PERSONAMINT_COLLECTIONS_DIR": str(collections),
        "PERSONAMINT_DATA_DIR": str(tmp_path / "data"),
        "PERSONAMINT_RPC_URL": anvil.url,
        "PERSONAMINT_SIGNER_KEY": dev_account(1).key.hex(),
    }
    command = [
        sys.executable,
        "-m",
        "cli",
        "deploy",
        "--collection",
        "genesis",
        "--deployer-keystore",
        str(keystore),
        "--deployer-password-file",
        str(password_file),
    ]
    done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    config: CollectionConfig = load_collection_config(path)
    assert config.deployment.contract_address is not None
    assert config.deployment.contract_address in done.stdout
    assert f"{dev_account(1).address}  (MINTER_ROLE" in done.stdout
    assert f"{dev_account(3).address}  (DEFAULT_ADMIN_ROLE)" in done.stdout
    # The contract metadata was pinned as canonical JSON and the contract points at it.
    document = json.dumps(
        {"description": "test", "name": "Genesis", "symbol": "PMINT"}, sort_keys=True, separators=(",", ":")
    ).encode()
    assert f"ipfs://{cid_for_bytes(document)}" in done.stdout
    assert LocalStore(tmp_path / "data" / "ipfs").get_sync(cid_for_bytes(document)) is not None

    again = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0
    assert "already deployed" in again.stderr


async def test_the_service_signer_comes_from_settings_and_is_checked(tmp_path: Path) -> None:
    hot = Account.create()
    keystore = tmp_path / "hot.json"
    keystore.write_text(json.dumps(Account.encrypt(hot.key, PASSWORD, kdf="scrypt", iterations=2**4)))
    settings = Settings(signer_keystore=keystore, signer_keystore_password=PASSWORD)  # type: ignore[call-arg]
    assert service_signer_address(settings) == hot.address  # read without the password
    signer = await service_signer(settings, chain_id=8453)
    assert signer.address == hot.address

    local = Settings(signer_key=dev_account(1).key.hex())  # type: ignore[call-arg]
    assert (await service_signer(local, chain_id=31337)).address == dev_account(1).address
    with pytest.raises(PublicDevKey):
        await service_signer(local, chain_id=8453)
    with pytest.raises(ValueError, match="refused in production"):
        Settings(env="production", signer_key=dev_account(1).key.hex())  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="one signer, not several"):
        Settings(signer_key=dev_account(1).key.hex(), signer_keystore=keystore)  # type: ignore[call-arg]


async def test_an_anvil_on_loopback_is_a_dev_chain_whatever_its_id() -> None:
    """Local mode starts an anvil per chain its collections name: dev keys are fine there, not elsewhere."""
    from chain.rpc import JsonRpc
    from config.chain_check import is_loopback_anvil
    from devstack.anvil import AnvilProcess

    async with AnvilProcess(chain_id=31338) as anvil:
        rpc = JsonRpc(anvil.url)
        try:
            assert await is_loopback_anvil(rpc)
        finally:
            await rpc.aclose()
        refuse_public_dev_key(dev_account(1).address, 31338, dev_chain=True)
        with pytest.raises(PublicDevKey):
            refuse_public_dev_key(dev_account(1).address, 31338)
    nobody = JsonRpc("http://127.0.0.1:9", timeout_s=1, retries=0)
    try:
        assert not await is_loopback_anvil(nobody)  # nothing answers: not known to be a dev chain
    finally:
        await nobody.aclose()
