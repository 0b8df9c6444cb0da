"""Shared fixtures: a real anvil per session, a fresh PersonaMint deployment per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.contract import Deployment, PersonaMint, deploy_persona_mint
from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilProcess]:
    """A fresh anvil on a free loopback port (never 8545), stopped after the session."""
    with AnvilProcess() as node:
        yield node


@dataclass(frozen=True)
class DeployedMint:
    """PersonaMint deployed with dev account 0 as admin and dev account 1 as minter."""

    w3: AsyncWeb3[Any]
    deployment: Deployment
    contract: PersonaMint
    admin: LocalAccount
    minter: LocalAccount
    outsider: LocalAccount


@pytest_asyncio.fixture
async def deployed(anvil: AnvilProcess) -> AsyncIterator[DeployedMint]:
    # Function-scoped: the AsyncWeb3 session belongs to the test's event loop.
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.url))
    admin, minter, outsider = dev_account(0), dev_account(1), dev_account(2)
    deployment = await deploy_persona_mint(
        w3,
        admin,
        name="Persona Mint",
        symbol="PERSONA",
        admin=admin.address,
        minter=minter.address,
        contract_uri="ipfs://contract",
        royalty_receiver=admin.address,
        royalty_bps=500,
    )
    yield DeployedMint(
        w3=w3,
        deployment=deployment,
        contract=PersonaMint(w3, deployment.address),
        admin=admin,
        minter=minter,
        outsider=outsider,
    )
    await w3.provider.disconnect()
