"""Integration fixtures: real redis-server, real anvil, the real service processes, on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack, processes_report, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole service as in production: API, worker, minter and housekeeper processes on real Redis and anvil."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the shared stack reports which of its processes still run and the
    minter's and worker's last log lines: a stalled mint is otherwise a bare timeout."""
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("stack")
    if report.when == "call" and report.failed and isinstance(running, Stack):
        report.sections.append(("stack processes", processes_report(running)))
