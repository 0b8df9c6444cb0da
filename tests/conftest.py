"""Shared fixtures: a real anvil per session, a fresh PersonaMint deployment per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from chain.web3 import connect_web3
from devstack.anvil import AnvilProcess
from tests.support.chain import DeployedMint, deploy_test_mint


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilProcess]:
    """A fresh anvil on a free loopback port (never 8545), stopped after the session."""
    with AnvilProcess() as node:
        yield node


@pytest_asyncio.fixture
async def deployed(anvil: AnvilProcess) -> AsyncIterator[DeployedMint]:
    # Function-scoped: the AsyncWeb3 session belongs to the test's event loop.
    w3 = connect_web3(anvil.url)
    yield await deploy_test_mint(w3)
    await w3.provider.disconnect()
