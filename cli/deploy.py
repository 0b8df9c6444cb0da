"""`personamint deploy --collection X`: deploy a collection's contract with separated keys and record it.

Custody: the deploying key pays for the deployment; DEFAULT_ADMIN_ROLE goes to the
collection's `deployment.admin` (a cold key or a multisig; the deployer when unset);
MINTER_ROLE, METADATA_ROLE (token updates, ERC-4906) and VOUCHER_SIGNER_ROLE (collector-paid
mints) go to the service's hot signer and nothing else does. The hot key may neither deploy nor
administer, so losing it can cost mints, never the collection. The contract is PersonaMint v2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from hexbytes import HexBytes

from chain.contract import (
    INTERFACE_ID,
    METADATA_ROLE,
    MINTER_ROLE,
    VOUCHER_SIGNER_ROLE,
    PersonaMint,
    deploy_persona_mint,
)
from chain.contracts.build import load_artifact
from chain.errors import ChainError
from chain.signers import SignerError, load_keystore, read_password_file
from config.chain_check import LOCAL_CHAIN_IDS, connect_rpc, refuse_public_dev_key
from config.collections import CollectionConfig, CollectionConfigError, load_collection_configs, record_deployment
from config.settings import Settings

__all__ = [
    "DeployError",
    "DeployResult",
    "add_deploy_parser",
    "cmd_deploy",
    "contract_metadata_bytes",
    "deploy_collection",
    "format_details",
    "service_signer_address",
]

DEPLOYER_PASSWORD_ENV = "PERSONAMINT_DEPLOYER_PASSWORD"  # noqa: S105 - the variable's name, not a password
DEPLOYER_KEY_ENV = "PERSONAMINT_DEPLOYER_KEY"  # a raw key: local chains only


class DeployError(ChainError):
    """The deployment was refused or its result does not check out."""

    code = "deploy_error"


@dataclass(frozen=True)
class DeployResult:
    """What an explorer (and the operator) needs to know about a deployment."""

    collection_id: str
    chain_id: int
    address: str
    tx_hash: str
    block_number: int
    deployer: str
    admin: str
    minter: str
    contract_uri: str
    constructor_args: str  # ABI-encoded, 0x-hex: what explorers ask for when verifying
    compiler: str
    evm_version: str
    optimizer_runs: int | None
    explorer_address: str | None
    explorer_tx: str | None
    collection_file: Path


def contract_metadata_bytes(config: CollectionConfig) -> bytes | None:
    """The ERC-7572 contractURI document as canonical JSON bytes (pinned as-is), or None."""
    metadata = config.deployment.contract_metadata
    if metadata is None:
        return None
    document: dict[str, Any] = {"symbol": config.symbol, **dict(metadata)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def deploy_collection(
    config: CollectionConfig,
    *,
    deployer: LocalAccount,
    minter: str,
    admin: str | None = None,
    rpc_urls: Sequence[str] = (),
    contract_uri: str | None = None,
    write_back: bool = True,
    receipt_timeout_s: float = 180.0,
) -> DeployResult:
    """Deploy `config`'s contract, check roles and parameters on chain, and record the address."""
    chain = config.chain
    if chain is None:
        raise DeployError(f"{config.path}: a collection needs a [chain] section to be deployed")
    if config.deployment.contract_address is not None:
        raise DeployError(
            f"{config.path}: already deployed at {config.deployment.contract_address} on chain {chain.chain_id}"
        )
    if not is_address(minter):
        raise DeployError(f"minter {minter!r} is not an address")
    minter = to_checksum_address(minter)
    admin = to_checksum_address(admin or config.deployment.admin or deployer.address)
    if minter == admin:
        raise DeployError(f"the service signer {minter} must not be the admin: give the admin role to another key")
    if minter == deployer.address:
        raise DeployError(f"deploy with the admin's (or a deployer's) key, not the service signer {minter}")
    for role, address in (("deployer", deployer.address), ("admin", admin), ("minter", minter)):
        refuse_public_dev_key(address, chain.chain_id, role=role)
    urls = list(rpc_urls) or list(chain.rpc_urls)
    labels = None if rpc_urls else list(chain.rpc_url_labels)
    if not urls:
        raise DeployError(f"{config.path}: no RPC URL: set chain.rpc_urls or pass --rpc-url")
    uri = config.deployment.contract_uri if contract_uri is None else contract_uri
    if not uri and config.deployment.contract_metadata is not None:
        raise DeployError(f"{config.path}: pin deployment.contract_metadata first and pass its ipfs:// URI")

    _, w3 = await connect_rpc(urls, expected_chain_id=chain.chain_id, labels=labels, where=f"collection {config.id}")
    try:
        deployment = await deploy_persona_mint(
            w3,
            deployer,
            name=config.name,
            symbol=config.symbol,
            admin=admin,
            minter=minter,
            contract_uri=uri,
            royalty_receiver=config.deployment.royalty_receiver,
            royalty_bps=config.deployment.royalty_bps,
            max_supply=config.deployment.max_supply,
            receipt_timeout=receipt_timeout_s,
        )
        contract = PersonaMint(w3, deployment.address)
        problems = await _check_deployed(
            contract, config, admin=admin, minter=minter, deployer=deployer.address, uri=uri
        )
        if problems:
            raise DeployError(f"contract {deployment.address} deployed but does not check out: {'; '.join(problems)}")
        await _wait_for_confirmations(w3, deployment.block_number, chain.confirmations, receipt_timeout_s)
        transaction = await w3.eth.get_transaction(deployment.tx_hash)  # type: ignore[arg-type]
    finally:
        await w3.provider.disconnect()
    artifact = load_artifact()
    bytecode = bytes(HexBytes(artifact["bytecode"]))
    tx_input = bytes(HexBytes(transaction["input"]))
    if not tx_input.startswith(bytecode):
        raise DeployError(f"transaction {deployment.tx_hash} does not carry the committed PersonaMint bytecode")
    if write_back:
        record_deployment(
            config.path,
            contract_address=deployment.address,
            deployed_block=deployment.block_number,
            deploy_tx=deployment.tx_hash,
        )
    settings = artifact.get("settings", {})
    optimizer = settings.get("optimizer", {})
    return DeployResult(
        collection_id=config.id,
        chain_id=deployment.chain_id,
        address=deployment.address,
        tx_hash=deployment.tx_hash,
        block_number=deployment.block_number,
        deployer=deployer.address,
        admin=admin,
        minter=minter,
        contract_uri=uri,
        constructor_args="0x" + tx_input[len(bytecode) :].hex(),
        compiler=str(artifact.get("compiler", {}).get("version", "unknown")),
        evm_version=str(settings.get("evmVersion", "default")),
        optimizer_runs=optimizer.get("runs") if optimizer.get("enabled") else None,
        explorer_address=chain.explorer_link("address", deployment.address),
        explorer_tx=chain.explorer_link("tx", deployment.tx_hash),
        collection_file=config.path,
    )


async def _check_deployed(
    contract: PersonaMint, config: CollectionConfig, *, admin: str, minter: str, deployer: str, uri: str
) -> list[str]:
    """Read back what the constructor was given; an empty list means all is as configured."""
    problems: list[str] = []
    if not await contract.has_code():
        return ["no code at the address"]
    if not await contract.is_persona_mint_v2():
        return [f"the contract does not report PersonaMint v2's interface 0x{INTERFACE_ID.hex()}"]
    for role, role_name in (
        (MINTER_ROLE, "MINTER_ROLE"),
        (METADATA_ROLE, "METADATA_ROLE"),
        (VOUCHER_SIGNER_ROLE, "VOUCHER_SIGNER_ROLE"),
    ):
        if not await contract.has_role(role, minter):
            problems.append(f"{minter} lacks {role_name}")
    if not await contract.is_admin(admin):
        problems.append(f"{admin} lacks DEFAULT_ADMIN_ROLE")
    if await contract.is_admin(minter):
        problems.append(f"the hot signer {minter} holds DEFAULT_ADMIN_ROLE")
    if deployer != admin and (await contract.is_admin(deployer) or await contract.is_minter(deployer)):
        problems.append(f"the deployer {deployer} kept a role")
    if await contract.max_supply() != config.deployment.max_supply:
        problems.append("maxSupply differs")
    if await contract.contract_uri() != uri:
        problems.append("contractURI differs")
    if config.deployment.royalty_bps:
        receiver, amount = await contract.royalty_info(1, 10_000)
        if (receiver, amount) != (config.deployment.royalty_receiver, config.deployment.royalty_bps):
            problems.append("royalty differs")
    return problems


async def _wait_for_confirmations(w3: Any, block_number: int, confirmations: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while await w3.eth.block_number < block_number + confirmations - 1:
        if time.monotonic() > deadline:
            raise DeployError(f"deployment in block {block_number} not {confirmations} blocks deep in {timeout_s:g}s")
        await asyncio.sleep(1.0)


def format_details(result: DeployResult) -> str:
    """Explorer-ready details: addresses, links, and what source verification asks for."""
    lines = [
        f"Deployed collection {result.collection_id!r} on chain {result.chain_id}",
        f"  contract          {result.address}",
        f"  transaction       {result.tx_hash} (block {result.block_number})",
    ]
    if result.explorer_address:
        lines.append(f"  explorer          {result.explorer_address}")
    if result.explorer_tx:
        lines.append(f"                    {result.explorer_tx}")
    optimizer = f"enabled, {result.optimizer_runs} runs" if result.optimizer_runs else "disabled"
    lines += [
        f"  admin             {result.admin}  (DEFAULT_ADMIN_ROLE)",
        f"  minter            {result.minter}  (MINTER_ROLE, METADATA_ROLE, VOUCHER_SIGNER_ROLE: the service signer)",
        f"  deployer          {result.deployer}",
        f"  contractURI       {result.contract_uri or '(none)'}",
        "Source verification (PersonaMintV2.sol, contract PersonaMintV2):",
        f"  compiler          {result.compiler}",
        f"  evm version       {result.evm_version}",
        f"  optimizer         {optimizer}",
        f"  constructor args  {result.constructor_args}",
        f"Recorded in {result.collection_file}",
    ]
    return "\n".join(lines)


def service_signer_address(settings: Settings) -> str | None:
    """The service's hot signer address, read without decrypting anything."""
    if settings.remote_signer_address:
        return to_checksum_address(settings.remote_signer_address)
    if settings.signer_keystore is not None:
        try:
            declared = json.loads(settings.signer_keystore.read_text()).get("address")
        except (OSError, ValueError, AttributeError):
            return None
        return to_checksum_address("0x" + str(declared).removeprefix("0x")) if declared else None
    if settings.signer_key is not None:
        account: LocalAccount = Account.from_key(settings.signer_key.get_secret_value())
        return str(account.address)
    return None


def add_deploy_parser(sub: Any) -> None:
    """Register `deploy` on the CLI's subparsers."""
    deploy = sub.add_parser("deploy", help="deploy a collection's contract and record its address")
    deploy.add_argument("--collection", required=True, help="collection id (collections/<id>.toml)")
    deploy.add_argument("--deployer-keystore", type=Path, help="keystore of the deploying (admin) key")
    deploy.add_argument(
        "--deployer-password-file", type=Path, help=f"its password; else ${DEPLOYER_PASSWORD_ENV} is read"
    )
    deploy.add_argument("--admin", help="admin address (default: deployment.admin, else the deployer)")
    deploy.add_argument("--minter", help="address to get MINTER_ROLE (default: the service signer)")
    deploy.add_argument("--rpc-url", help="RPC URL to deploy through (default: chain.rpc_urls, else the service's)")
    deploy.add_argument("--no-write", action="store_true", help="do not record the address in the collection file")


def cmd_deploy(settings: Settings, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    try:
        configs = load_collection_configs(settings.collections_dir)
    except CollectionConfigError as exc:
        raise SystemExit(f"deploy: {exc}") from None
    config = configs.get(args.collection)
    if config is None:
        raise SystemExit(f"deploy: unknown collection {args.collection!r}; known: {', '.join(sorted(configs))}")
    try:
        deployer = _deployer(settings, args, environ, config)
        minter = args.minter or service_signer_address(settings)
        if not minter:
            raise SystemExit("deploy: which address gets MINTER_ROLE? pass --minter or configure the service signer")
        uri = asyncio.run(_contract_uri(settings, config))
        if args.rpc_url:
            rpc_urls = [args.rpc_url]
        elif config.chain is not None and config.chain.rpc_urls:
            rpc_urls = []  # the collection's own, with its fallbacks
        else:
            rpc_urls = [settings.rpc_url] if settings.rpc_url else []
        result = asyncio.run(
            deploy_collection(
                config,
                deployer=deployer,
                minter=minter,
                admin=args.admin,
                rpc_urls=rpc_urls,
                contract_uri=uri,
                write_back=not args.no_write,
            )
        )
    except (ChainError, CollectionConfigError, SignerError) as exc:
        raise SystemExit(f"deploy: {exc}") from None
    print(format_details(result))


def _deployer(
    settings: Settings, args: argparse.Namespace, environ: Mapping[str, str], config: CollectionConfig
) -> LocalAccount:
    if args.deployer_keystore is not None:
        if args.deployer_password_file is not None:
            password = read_password_file(args.deployer_password_file)
        else:
            password = environ.get(DEPLOYER_PASSWORD_ENV, "")
        if not password:
            raise SystemExit(
                f"deploy: the deployer keystore needs --deployer-password-file or ${DEPLOYER_PASSWORD_ENV}"
            )
        return load_keystore(args.deployer_keystore, password=password).account
    raw = environ.get(DEPLOYER_KEY_ENV)
    local_chain = config.chain is not None and config.chain.chain_id in LOCAL_CHAIN_IDS
    if raw and settings.env == "local" and local_chain:
        account: LocalAccount = Account.from_key(raw)
        return account
    if raw:
        raise SystemExit(f"deploy: ${DEPLOYER_KEY_ENV} (a raw key) is only accepted for local chains in local mode")
    raise SystemExit("deploy: pass --deployer-keystore (the admin's or a deployer's keystore)")


async def _contract_uri(settings: Settings, config: CollectionConfig) -> str:
    """The collection's contractURI, pinning its metadata document when it has one."""
    document = contract_metadata_bytes(config)
    if config.deployment.contract_uri or document is None:
        return config.deployment.contract_uri
    from ipfs.pinning.local import LocalStore
    from ipfs.pinning.redundant import aclose_pinner, build_pinner

    pinner = build_pinner(
        settings.pinner_configs(),
        local=LocalStore(settings.ipfs_dir),
        policy=settings.pin_policy,
        wait=settings.pin_wait_policy(),
    )
    try:
        cid = await pinner.pin(document, content_type="application/json", name=f"{config.id}-contract.json")
    finally:
        await aclose_pinner(pinner)
    if settings.redis_url:  # so every API host's gateway reads it through, not only this machine's
        from redis.exceptions import RedisError

        from config.redis_urls import redis_client
        from jobs.pinned import PinnedRegistry

        redis = redis_client(settings.redis_url)
        try:
            await PinnedRegistry(redis).add(cid)
        except RedisError as exc:  # the document is pinned; only other hosts' read-through waits for this
            print(f"deploy: could not record {cid} as pinned in Redis ({type(exc).__name__})", file=sys.stderr)
        finally:
            await redis.aclose()
    return f"ipfs://{cid}"
