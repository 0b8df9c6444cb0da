"""`ServiceProcesses.supervise` (what local `serve` runs): dead children restart, a dead API ends it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devstack.anvil import free_port
from devstack.local import LocalStackError, ServiceProcesses


def test_a_dying_child_is_restarted_with_backoff_and_a_dead_api_ends_supervision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Production settings without Redis: the worker exits at start-up, every time.
    services = ServiceProcesses({"PERSONAMINT_ENV": "production"}, port=free_port(), log_dir=tmp_path)
    services.spawn("worker-0", "worker")
    # The API stands in as a process that fails once the flag file appears: after two restarts.
    flag = tmp_path / "api-may-exit"
    script = f"import pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists(): time.sleep(0.05)\nexit(3)"
    services.processes["api"] = subprocess.Popen([sys.executable, "-c", script])

    def release_the_api() -> None:
        deadline = time.monotonic() + 60
        while services.restarts.get("worker-0", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        flag.touch()

    watcher = threading.Thread(target=release_the_api, daemon=True)
    watcher.start()
    try:
        with caplog.at_level("WARNING", logger="personamint.devstack"), pytest.raises(LocalStackError, match="3"):
            services.supervise(poll_s=0.05, backoff_s=0.2, max_backoff_s=0.8)
    finally:
        flag.touch()
        watcher.join()
        services.stop()
    assert services.restarts["worker-0"] >= 2, services.restarts
    exits = [r.getMessage() for r in caplog.records if "exited unexpectedly" in r.getMessage()]
    assert all(message.startswith("worker-0 exited unexpectedly") for message in exits)
    # Backed off, doubling on each quick death: not a spin.
    assert "restarting in 0.2 s" in exits[0]
    assert "restarting in 0.4 s" in exits[1]
