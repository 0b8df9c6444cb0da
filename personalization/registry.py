"""Known contracts per chain, used to label what a wallet touched."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from eth_utils.address import is_address, to_checksum_address

from personalization.errors import PersonalizationError

LABELS = ("gaming", "defi", "art", "social", "infrastructure")


class RegistryError(PersonalizationError):
    """A known-contracts file is malformed."""

    code = "invalid_registry"


@dataclass(frozen=True)
class KnownContract:
    chain_id: int
    address: str
    name: str
    label: str


class ContractRegistry:
    """Looks up (chain id, address) → KnownContract."""

    def __init__(self, contracts: Iterable[KnownContract] = ()) -> None:
        self._by_key: dict[tuple[int, str], KnownContract] = {}
        for contract in contracts:
            self._by_key[(contract.chain_id, contract.address.lower())] = contract

    def lookup(self, chain_id: int, address: str) -> KnownContract | None:
        return self._by_key.get((chain_id, address.lower()))

    def __len__(self) -> int:
        return len(self._by_key)

    def merged(self, other: ContractRegistry) -> ContractRegistry:
        return ContractRegistry([*self._by_key.values(), *other._by_key.values()])

    @classmethod
    def from_entries(cls, entries: list[dict[str, object]], where: str) -> ContractRegistry:
        contracts = []
        for index, entry in enumerate(entries):
            spot = f"{where}: contract[{index}]"
            address, label = entry.get("address"), entry.get("label")
            if not isinstance(address, str) or not is_address(address):
                raise RegistryError(f"{spot}.address is not an address")
            if label not in LABELS:
                raise RegistryError(f"{spot}.label must be one of {LABELS}")
            chain_id = entry.get("chain_id")
            if not isinstance(chain_id, int):
                raise RegistryError(f"{spot}.chain_id must be an integer")
            contracts.append(
                KnownContract(chain_id, to_checksum_address(address), str(entry.get("name", "")), str(label))
            )
        return cls(contracts)

    @classmethod
    def load(cls, path: Path) -> ContractRegistry:
        """Read a .toml ([[contract]] tables) or .json ({"contract": [...]}) registry file."""
        try:
            text = path.read_text()
            raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path}: {exc}") from exc
        return cls.from_entries(list(raw.get("contract", [])), str(path))

    @classmethod
    def builtin(cls) -> ContractRegistry:
        text = resources.files("personalization.data").joinpath("known_contracts.toml").read_text()
        return cls.from_entries(list(tomllib.loads(text).get("contract", [])), "known_contracts.toml")
