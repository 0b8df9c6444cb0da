"""Anvil's public development accounts: what local stacks sign with and production refuses."""

from __future__ import annotations

import functools
from typing import NamedTuple

from eth_account import Account
from eth_account.signers.local import LocalAccount

# Anvil's (and Hardhat's) default mnemonic. Its keys are PUBLIC: anyone can sign with
# them. Use them only on a local dev chain; funds sent to these addresses on a real
# network are stolen within seconds.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class DevAccount(NamedTuple):
    """One of anvil's public dev accounts: (checksum address, 0x-hex private key)."""

    address: str
    private_key: str


@functools.cache
def _derive_dev_accounts(count: int) -> tuple[DevAccount, ...]:
    Account.enable_unaudited_hdwallet_features()
    accounts = []
    for index in range(count):
        account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        accounts.append(DevAccount(account.address, "0x" + account.key.hex().removeprefix("0x")))
    return tuple(accounts)


def dev_accounts(count: int = 10) -> list[DevAccount]:
    """The first `count` anvil dev accounts (public keys: local chains only)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    return list(_derive_dev_accounts(count))


def dev_account(index: int) -> LocalAccount:
    """Signer for anvil dev account `index` (public key: local chains only)."""
    if index < 0:
        raise ValueError("index must be >= 0")
    account: LocalAccount = Account.from_key(_derive_dev_accounts(index + 1)[index].private_key)
    return account
