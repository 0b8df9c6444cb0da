"""Where each collection's jobs go on chain: its chain's RPC URLs, contract, confirmations, fee ceiling and mint queue.

A deployment has a default chain (PERSONAMINT_RPC_URL, _CHAIN_ID, _CONTRACT_ADDRESS, as before
several chains) and any number of others named by collection files (`[chain]`, `[deployment]`),
with PERSONAMINT_CHAINS filling what a file leaves out (local mode's anvils). Collections on one
chain share that chain's route: one minter, one signer, one nonce space, one mint queue, however
many contracts. The default chain keeps the queue name it always had (`pm-mint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.collections import CollectionConfig
from config.settings import Settings
from jobs.queues import MINT_QUEUE

__all__ = ["DEFAULT_CHAIN", "ChainRoute", "ChainRouteError", "ChainRoutes", "CollectionRoute", "chain_routes"]

DEFAULT_CHAIN = "default"
_GWEI = 10**9


class ChainRouteError(ValueError):
    """A collection's chain cannot be reached with this configuration; the message says what to set."""


@dataclass(frozen=True)
class ChainRoute:
    """One chain as this deployment uses it."""

    key: str
    """`default` for PERSONAMINT_RPC_URL's chain, else the chain id: names the mint queue and the minter."""
    chain_id: int | None
    """None only for the default chain when neither PERSONAMINT_CHAIN_ID nor a file says it (the RPC will)."""
    rpc_urls: tuple[str, ...]
    """First primary, the rest fallbacks: history, previews and the minter read and send here."""
    confirmations: int
    """The most any of its collections (or PERSONAMINT_CONFIRMATIONS) asks for: one minter waits for all."""
    max_fee_per_gas_wei: int | None
    """The lowest ceiling any of its collections (or PERSONAMINT_FEE_CEILING_GWEI) sets."""
    contracts: tuple[str, ...]
    """Every contract its collections mint in, in collection order."""
    deploy_block: int = 0

    @property
    def mint_queue(self) -> str:
        return MINT_QUEUE if self.key == DEFAULT_CHAIN else f"{MINT_QUEUE}:{self.key}"

    @property
    def label(self) -> str:
        """How logs and statuses name it."""
        return f"chain {self.chain_id}" if self.chain_id is not None else "the default chain"


@dataclass(frozen=True)
class CollectionRoute:
    collection_id: str
    chain: ChainRoute
    contract_address: str | None


@dataclass(frozen=True)
class ChainRoutes:
    chains: Mapping[str, ChainRoute]
    collections: Mapping[str, CollectionRoute]

    @property
    def default(self) -> ChainRoute:
        return self.chains[DEFAULT_CHAIN]

    def for_collection(self, collection_id: str) -> CollectionRoute:
        """The collection's route; a collection no file names (an old job's) mints on the default chain."""
        route = self.collections.get(collection_id)
        if route is not None:
            return route
        default = self.default
        return CollectionRoute(collection_id, default, default.contracts[0] if default.contracts else None)

    def chain_for(self, collection_id: str) -> ChainRoute:
        return self.for_collection(collection_id).chain

    def minter_chain(self, chain_id: int | None) -> ChainRoute:
        """The route a minter for `chain_id` (None: the default chain) takes jobs for."""
        if chain_id is None:
            return self.default
        for route in self.chains.values():
            if route.chain_id == chain_id:
                return route
        known = ", ".join(str(route.chain_id) for route in self.chains.values() if route.chain_id is not None)
        raise ChainRouteError(f"no collection mints on chain {chain_id} (chains: {known or 'none known'})")


def _key(config: CollectionConfig, settings: Settings) -> str:
    chain = config.chain
    if chain is None or chain.chain_id == settings.chain_id:
        return DEFAULT_CHAIN
    if settings.chain_id is None and not chain.rpc_urls and chain.chain_id not in settings.chains:
        return DEFAULT_CHAIN  # it reads PERSONAMINT_RPC_URL, so it is that URL's chain
    return str(chain.chain_id)


def chain_routes(settings: Settings, configs: Mapping[str, CollectionConfig]) -> ChainRoutes:
    """Group the collections by chain and resolve what each file leaves to the settings."""
    groups: dict[str, list[CollectionConfig]] = {DEFAULT_CHAIN: []}
    for config in configs.values():
        groups.setdefault(_key(config, settings), []).append(config)
    ceiling = None if settings.fee_ceiling_gwei is None else int(settings.fee_ceiling_gwei * _GWEI)
    chains: dict[str, ChainRoute] = {}
    collections: dict[str, CollectionRoute] = {}
    for key, group in groups.items():
        declared = {config.chain.chain_id for config in group if config.chain is not None}
        if key == DEFAULT_CHAIN:
            chain_id = settings.chain_id if settings.chain_id is not None else (min(declared) if declared else None)
            if settings.chain_id is None and len(declared) > 1:
                raise ChainRouteError(
                    f"collections on PERSONAMINT_RPC_URL name chains {sorted(declared)}: set PERSONAMINT_CHAIN_ID "
                    "and give the others rpc_urls or a PERSONAMINT_CHAINS entry"
                )
            endpoint_url, endpoint_contract, deploy_block = (
                settings.rpc_url,
                settings.contract_address,
                settings.contract_deploy_block,
            )
        else:
            chain_id = int(key)
            endpoint = settings.chains.get(chain_id)
            endpoint_url = endpoint.rpc_url if endpoint else None
            endpoint_contract = endpoint.contract_address if endpoint else None
            deploy_block = endpoint.deploy_block if endpoint else 0
        urls: list[str] = []
        if key == DEFAULT_CHAIN and endpoint_url:
            urls.append(endpoint_url)  # the minter has always sent through PERSONAMINT_RPC_URL
        for config in group:
            assert config.chain is not None or key == DEFAULT_CHAIN
            for url in config.chain.rpc_urls if config.chain else ():
                if url not in urls:
                    urls.append(url)
        if endpoint_url and endpoint_url not in urls:
            urls.append(endpoint_url)
        if key != DEFAULT_CHAIN and not urls:
            names = ", ".join(config.id for config in group)
            raise ChainRouteError(
                f"collection {names} is on chain {chain_id}, which has no RPC URL: give its [chain] rpc_urls "
                f'or set PERSONAMINT_CHAINS=\'{{"{chain_id}": {{"rpc_url": "…"}}}}\''
            )
        confirmations = max([settings.confirmations, *(config.chain.confirmations for config in group if config.chain)])
        ceilings = [ceiling, *(config.chain.max_fee_per_gas_wei for config in group if config.chain)]
        known = [value for value in ceilings if value is not None]
        contracts: list[str] = []
        addresses: dict[str, str | None] = {}
        for config in group:
            address = config.deployment.contract_address or endpoint_contract
            addresses[config.id] = address
            if address is not None and address not in contracts:
                contracts.append(address)
        if not group and endpoint_contract is not None:
            contracts.append(endpoint_contract)  # no file names the default chain: its contract still mints
        # Where the minter looks for Minted events: the earliest of its contracts' deployments.
        blocks = [
            (config.deployment.deployed_block or 0) if config.deployment.contract_address else deploy_block
            for config in group
        ]
        route = ChainRoute(
            key=key,
            chain_id=chain_id,
            rpc_urls=tuple(urls),
            confirmations=confirmations,
            max_fee_per_gas_wei=min(known) if known else None,
            contracts=tuple(contracts),
            deploy_block=min(blocks) if blocks else deploy_block,
        )
        chains[key] = route
        for config in group:
            collections[config.id] = CollectionRoute(config.id, route, addresses[config.id])
    return ChainRoutes(chains=chains, collections=collections)
