"""The local stack's CPU priorities: previews render only with the CPU that mints leave over."""

from __future__ import annotations

import os
import time

from tests.support.stack import Stack


def _scheduler_and_nice(pid: int) -> tuple[int, int]:
    # The worker sets its policy at start-up, after its imports: give it that long.
    deadline = time.monotonic() + 30
    while True:
        found = os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid)
        if found != (os.SCHED_OTHER, 0) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_the_previewer_runs_idle_and_the_pipeline_workers_do_not(stack: Stack) -> None:
    previewer = stack.services.processes["previewer"].pid
    assert _scheduler_and_nice(previewer) == (os.SCHED_IDLE, 10)
    for name, process in stack.services.processes.items():
        if name.startswith("worker-") or name in ("api", "minter"):
            assert os.sched_getscheduler(process.pid) == os.SCHED_OTHER, name
            assert os.getpriority(os.PRIO_PROCESS, process.pid) == 0, name
