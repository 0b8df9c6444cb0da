"""Integration fixtures: real redis-server, real anvil, the real service processes, on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole service as in production: API, worker, minter and housekeeper processes on real Redis and anvil."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
