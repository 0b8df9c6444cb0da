"""Load every collection file at start-up; a bad file stops the service with its name and field.

A collection file (`collections/<id>.toml`) holds the collection's identity (`id`, `name`,
`symbol`, `description`), its style DNA (`[style]`, `[render]`), where it lives
(`[chain]`) and how its contract is (or was) deployed (`[deployment]`). The style DNA hash
covers identity, style and render only: moving RPC providers, raising a fee ceiling or
recording the deployed address must not change the hash minted tokens carry.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from eth_utils.address import is_address, is_checksum_address, to_checksum_address

from personalization.errors import StyleDNAError
from personalization.style import StyleDNA, parse_style_dna

__all__ = [
    "ChainConfig",
    "CollectionConfig",
    "CollectionConfigError",
    "DeploymentConfig",
    "SessionPolicy",
    "VoucherPolicy",
    "collections_by_chain",
    "load_collection_config",
    "load_collection_configs",
    "load_collections",
    "record_deployment",
]

# Sections that configure where a collection lives and who may mint it, not what it looks like.
_CHAIN_SECTIONS = ("chain", "deployment", "sessions", "vouchers")
_CHAIN_KEYS = frozenset({"chain_id", "rpc_urls", "confirmations", "max_fee_gwei", "explorer_url"})
_DEPLOYMENT_KEYS = frozenset(
    {
        "contract_address",
        "deployed_block",
        "deploy_tx",
        "admin",
        "max_supply",
        "royalty_receiver",
        "royalty_bps",
        "contract_uri",
        "contract_metadata",
        "per_wallet_cap",
    }
)
# [sessions]: what a SIWE session (a wallet signed in, minting to itself at the service's gas) may do.
_SESSION_KEYS = frozenset({"mints_per_wallet"})
# [vouchers]: mints the collector pays for, sending the voucher the service signed (EIP-712).
_VOUCHER_KEYS = frozenset({"enabled", "price_wei", "ttl_s"})
_MAX_VOUCHER_TTL_S = 30 * 86_400
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URI_SCHEMES = ("ipfs://", "https://", "ar://", "data:")
_MAX_ROYALTY_BPS = 10_000  # ERC-2981 as OpenZeppelin implements it: basis points of the sale price
_WEI_PER_GWEI = Decimal(10**9)


class CollectionConfigError(ValueError):
    """A collection file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class ChainConfig:
    """The chain a collection is minted on and how carefully."""

    chain_id: int
    # Tried in order; empty means the service's own PERSONAMINT_RPC_URL.
    rpc_urls: tuple[str, ...] = ()
    # The same URLs as written in the file (`${VAR}` unexpanded): safe to log and print.
    rpc_url_labels: tuple[str, ...] = ()
    confirmations: int = 1
    max_fee_per_gas_wei: int | None = None
    explorer_url: str | None = None

    def explorer_link(self, kind: str, value: str) -> str | None:
        """`{explorer}/address/0x…` or `/tx/0x…`, when an explorer is configured."""
        return f"{self.explorer_url}/{kind}/{value}" if self.explorer_url else None


@dataclass(frozen=True)
class DeploymentConfig:
    """The collection's contract: its address once deployed, and what it is deployed with."""

    contract_address: str | None = None  # None: deploy on demand (`personamint deploy`)
    deployed_block: int | None = None
    deploy_tx: str | None = None
    admin: str | None = None  # DEFAULT_ADMIN_ROLE holder; default: the deploying key
    max_supply: int = 0  # 0: unlimited
    royalty_receiver: str | None = None
    royalty_bps: int = 0
    contract_uri: str = ""
    contract_metadata: Mapping[str, Any] | None = None  # pinned at deploy time when contract_uri is empty
    per_wallet_cap: int = 0  # 0: unlimited


@dataclass(frozen=True)
class SessionPolicy:
    """The collection's own limits for SIWE sessions; None: the service's setting applies."""

    mints_per_wallet: int | None = None  # 0: sessions may not mint in this collection


@dataclass(frozen=True)
class VoucherPolicy:
    """Whether a caller may ask for a collector-paid mint (`"payer": "collector"`), its price, and how long
    a signed voucher stays valid (a request may ask for less)."""

    enabled: bool = False
    price_wei: int = 0  # what the collector pays, forwarded to the contract's payout address
    ttl_s: int = 3600


@dataclass(frozen=True)
class CollectionConfig:
    """Everything one collection file says, validated."""

    id: str
    name: str
    symbol: str
    description: str
    path: Path
    style_dna: StyleDNA
    chain: ChainConfig | None
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    vouchers: VoucherPolicy = field(default_factory=VoucherPolicy)

    @property
    def deployed(self) -> bool:
        return self.deployment.contract_address is not None


def load_collections(directory: Path) -> dict[str, StyleDNA]:
    """Every collection's style DNA by id (the whole file is validated, chain sections too)."""
    return {collection_id: config.style_dna for collection_id, config in load_collection_configs(directory).items()}


def load_collection_configs(
    directory: Path, *, environ: Mapping[str, str] | None = None
) -> dict[str, CollectionConfig]:
    """Every `*.toml` in `directory`, validated, by collection id."""
    collections: dict[str, CollectionConfig] = {}
    contracts: dict[tuple[int, str], Path] = {}
    for path in sorted(directory.glob("*.toml")):
        config = load_collection_config(path, environ=environ)
        if config.id in collections:
            raise CollectionConfigError(
                f"{path}: collection id {config.id!r} is defined twice (also in {collections[config.id].path})"
            )
        if config.chain is not None and config.deployment.contract_address is not None:
            key = (config.chain.chain_id, config.deployment.contract_address)
            if key in contracts:
                raise CollectionConfigError(
                    f"{path}: deployment.contract_address {key[1]} on chain {key[0]} is also used by {contracts[key]}"
                )
            contracts[key] = path
        collections[config.id] = config
    if not collections:
        raise CollectionConfigError(f"{directory}: no collection files (*.toml)")
    return collections


def load_collection_config(path: Path, *, environ: Mapping[str, str] | None = None) -> CollectionConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CollectionConfigError(f"{path}: {exc.strerror}") from None
    return _parse(text, path, os.environ if environ is None else environ)


def collections_by_chain(collections: Mapping[str, CollectionConfig]) -> dict[int, list[CollectionConfig]]:
    """Collections grouped by chain id: one minter (one signer, one nonce space) per group."""
    grouped: dict[int, list[CollectionConfig]] = {}
    for config in collections.values():
        if config.chain is not None:
            grouped.setdefault(config.chain.chain_id, []).append(config)
    return grouped


def _parse(text: str, path: Path, environ: Mapping[str, str]) -> CollectionConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CollectionConfigError(f"{path}: {exc}") from None
    style_raw = {key: value for key, value in raw.items() if key not in _CHAIN_SECTIONS}
    try:
        dna = parse_style_dna(style_raw, str(path))
    except StyleDNAError as exc:
        raise CollectionConfigError(str(exc)) from None
    for key in ("name", "symbol"):
        if not isinstance(raw.get(key, ""), str):
            raise CollectionConfigError(f"{path}: {key} must be a string")
    if not dna.name.strip() or not dna.symbol.strip():
        raise CollectionConfigError(f"{path}: name and symbol must not be empty")
    chain = _chain(raw.get("chain"), path, environ) if "chain" in raw else None
    deployment = _deployment(raw.get("deployment", {}), path)
    sessions = _sessions(raw.get("sessions", {}), path)
    vouchers = _vouchers(raw.get("vouchers", {}), path)
    if deployment.contract_address is not None and chain is None:
        raise CollectionConfigError(f"{path}: deployment.contract_address needs a [chain] section saying which chain")
    return CollectionConfig(
        id=dna.collection_id,
        name=dna.name,
        symbol=dna.symbol,
        description=dna.description,
        path=path,
        style_dna=dna,
        chain=chain,
        deployment=deployment,
        sessions=sessions,
        vouchers=vouchers,
    )


def _table(value: Any, path: Path, section: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CollectionConfigError(f"{path}: [{section}] must be a table")
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {section}.{close[0]}?" if close else ""
            raise CollectionConfigError(f"{path}: {section}.{key} is not a known field{hint}")
    return value


def _int(table: Mapping[str, Any], key: str, where: str, *, default: int, low: int, high: int | None = None) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise CollectionConfigError(f"{where}.{key} must be an integer {bounds}")
    return value


def _address(value: Any, where: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise CollectionConfigError(f"{where} must be a 0x-prefixed 20-byte address")
    mixed_case = value[2:] != value[2:].lower() and value[2:] != value[2:].upper()
    if mixed_case and not is_checksum_address(value):
        # A mixed-case address with a bad checksum is almost always a typo.
        raise CollectionConfigError(f"{where} has an invalid EIP-55 checksum")
    return to_checksum_address(value)


def _url(value: Any, where: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value.startswith(schemes) or len(value) <= len(value.split("://")[0]) + 3:
        raise CollectionConfigError(f"{where} must be a URL starting with {' or '.join(schemes)}")
    return value


def _expand(template: str, where: str, environ: Mapping[str, str]) -> str:
    """`${NAME}` from the environment: RPC URLs carry API keys that do not belong in git."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ or not environ[name]:
            raise CollectionConfigError(f"{where} uses ${{{name}}}, which is not set in the environment")
        return environ[name]

    return _ENV_REFERENCE.sub(substitute, template)


def _chain(value: Any, path: Path, environ: Mapping[str, str]) -> ChainConfig:
    table = _table(value, path, "chain", _CHAIN_KEYS)
    where = f"{path}: chain"
    if "chain_id" not in table:
        raise CollectionConfigError(f"{where}.chain_id is required")
    chain_id = _int(table, "chain_id", where, default=0, low=1, high=2**64 - 1)
    labels = table.get("rpc_urls", [])
    if not isinstance(labels, list) or not all(isinstance(url, str) for url in labels):
        raise CollectionConfigError(f"{where}.rpc_urls must be a list of URLs (first is primary, the rest fallbacks)")
    urls = []
    for index, label in enumerate(labels):
        field_name = f"{where}.rpc_urls[{index}]"
        urls.append(_url(_expand(label, field_name, environ), field_name, ("https://", "http://")))
    if len(set(urls)) != len(urls):
        raise CollectionConfigError(f"{where}.rpc_urls lists the same URL twice")
    max_fee = table.get("max_fee_gwei")
    max_fee_wei: int | None = None
    if max_fee is not None:
        if isinstance(max_fee, bool) or not isinstance(max_fee, int | float):
            raise CollectionConfigError(f"{where}.max_fee_gwei must be a number of gwei")
        try:
            wei = Decimal(str(max_fee)) * _WEI_PER_GWEI
        except InvalidOperation:
            raise CollectionConfigError(f"{where}.max_fee_gwei must be a number of gwei") from None
        if not wei.is_finite() or wei >= 2**256:
            raise CollectionConfigError(f"{where}.max_fee_gwei must be a finite number of gwei")
        if wei <= 0 or wei != wei.to_integral_value():
            raise CollectionConfigError(f"{where}.max_fee_gwei must be positive and a whole number of wei")
        max_fee_wei = int(wei)
    explorer = table.get("explorer_url")
    return ChainConfig(
        chain_id=chain_id,
        rpc_urls=tuple(urls),
        rpc_url_labels=tuple(labels),
        confirmations=_int(table, "confirmations", where, default=1, low=1, high=64),
        max_fee_per_gas_wei=max_fee_wei,
        explorer_url=_url(explorer, f"{where}.explorer_url", ("https://", "http://")).rstrip("/") if explorer else None,
    )


def _deployment(value: Any, path: Path) -> DeploymentConfig:
    table = _table(value, path, "deployment", _DEPLOYMENT_KEYS)
    where = f"{path}: deployment"
    address = table.get("contract_address")
    contract_address = _address(address, f"{where}.contract_address") if address not in (None, "") else None
    deployed_block = table.get("deployed_block")
    if deployed_block is not None:
        deployed_block = _int(table, "deployed_block", where, default=0, low=0)
    deploy_tx = table.get("deploy_tx")
    if deploy_tx is not None and not (isinstance(deploy_tx, str) and re.fullmatch(r"0x[0-9a-fA-F]{64}", deploy_tx)):
        raise CollectionConfigError(f"{where}.deploy_tx must be a 0x-prefixed 32-byte transaction hash")
    royalty_bps = _int(table, "royalty_bps", where, default=0, low=0, high=_MAX_ROYALTY_BPS)
    receiver = table.get("royalty_receiver")
    royalty_receiver = _address(receiver, f"{where}.royalty_receiver") if receiver not in (None, "") else None
    if royalty_bps and royalty_receiver is None:
        raise CollectionConfigError(f"{where}.royalty_receiver is required when royalty_bps > 0")
    contract_uri = table.get("contract_uri", "")
    if contract_uri != "":
        contract_uri = _url(contract_uri, f"{where}.contract_uri", _URI_SCHEMES)
    metadata = table.get("contract_metadata")
    if metadata is not None:
        if contract_uri:
            raise CollectionConfigError(f"{where}: give contract_uri or [deployment.contract_metadata], not both")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
            raise CollectionConfigError(f"{where}.contract_metadata must be a table with at least a name")
    admin = table.get("admin")
    return DeploymentConfig(
        contract_address=contract_address,
        deployed_block=deployed_block,
        deploy_tx=deploy_tx,
        admin=_address(admin, f"{where}.admin") if admin not in (None, "") else None,
        max_supply=_int(table, "max_supply", where, default=0, low=0),
        royalty_receiver=royalty_receiver,
        royalty_bps=royalty_bps,
        contract_uri=contract_uri,
        contract_metadata=metadata,
        per_wallet_cap=_int(table, "per_wallet_cap", where, default=0, low=0),
    )


def _sessions(value: Any, path: Path) -> SessionPolicy:
    table = _table(value, path, "sessions", _SESSION_KEYS)
    where = f"{path}: sessions"
    if "mints_per_wallet" not in table:
        return SessionPolicy()
    return SessionPolicy(mints_per_wallet=_int(table, "mints_per_wallet", where, default=0, low=0, high=2**31 - 1))


def _vouchers(value: Any, path: Path) -> VoucherPolicy:
    table = _table(value, path, "vouchers", _VOUCHER_KEYS)
    where = f"{path}: vouchers"
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        raise CollectionConfigError(f"{where}.enabled must be true or false")
    return VoucherPolicy(
        enabled=enabled,
        price_wei=_int(table, "price_wei", where, default=0, low=0, high=2**256 - 1),
        ttl_s=_int(table, "ttl_s", where, default=3600, low=1, high=_MAX_VOUCHER_TTL_S),
    )


def record_deployment(path: Path, *, contract_address: str, deployed_block: int, deploy_tx: str) -> CollectionConfig:
    """Write a deployment into the collection file, keeping every other line as it was.

    Refuses to replace a different address already recorded (that would orphan a live
    contract); the edited text is validated before it atomically replaces the file.
    """
    current = load_collection_config(path)
    recorded = current.deployment.contract_address
    if recorded is not None and recorded != to_checksum_address(contract_address):
        raise CollectionConfigError(
            f"{path}: deployment.contract_address is already {recorded}; remove it by hand to redeploy"
        )
    values = {
        "contract_address": f'"{to_checksum_address(contract_address)}"',
        "deployed_block": str(int(deployed_block)),
        "deploy_tx": f'"{deploy_tx}"',
    }
    text = _set_table_values(path.read_text(), "deployment", values)
    updated = _parse(text, path, os.environ)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, path.stat().st_mode & 0o777)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return updated


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")


def _set_table_values(text: str, table: str, values: Mapping[str, str]) -> str:
    """Set `key = value` lines inside `[table]` (created at the end if missing)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m.group(1) == table), None)
    if start is None:
        block = "".join(f"{key} = {value}\n" for key, value in values.items())
        separator = "" if text.endswith("\n") or not text else "\n"
        return f"{text}{separator}\n[{table}]\n{block}"
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    remaining = dict(values)
    for index in range(start + 1, end):
        key = lines[index].split("=", 1)[0].strip()
        if "=" in lines[index] and key in remaining:
            lines[index] = f"{key} = {remaining.pop(key)}\n"
    insert_at = start + 1
    for key, value in remaining.items():
        lines.insert(insert_at, f"{key} = {value}\n")
        insert_at += 1
    return "".join(lines)
