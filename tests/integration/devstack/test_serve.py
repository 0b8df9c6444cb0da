"""`personamint serve` as a newcomer runs it: its printed key and contract work, a killed worker is
restarted, and SIGTERM stops every child."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.anvil import free_port

ROOT = Path(__file__).resolve().parents[3]
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _descendants(pid: int) -> set[int]:
    """Every live process below pid, from /proc (children of children included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _child_running(pid: int, command: str) -> int | None:
    """The live child of serve running `personamint <command>` (python -m cli <command>), if any."""
    for child in _descendants(pid):
        try:
            argv = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:4] == [b"-m", b"cli", command.encode()] and _alive(child):
            return child
    return None


def _confirmed(client: httpx.Client, idempotency_key: str) -> dict[str, object]:
    accepted = client.post("/v1/mints", json={"recipient": RECIPIENT}, headers={"Idempotency-Key": idempotency_key})
    assert accepted.status_code == 202, accepted.text
    job_url = accepted.json()["links"]["self"]
    deadline = time.monotonic() + 90
    status: dict[str, object] = client.get(job_url).json()
    while status["status"] not in ("confirmed", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
        status = client.get(job_url).json()
    assert status["status"] == "confirmed", status
    return status


def test_serve_prints_a_working_key_and_the_contract_and_sigterm_stops_every_child(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERSONAMINT_")} | {
        "PERSONAMINT_DATA_DIR": str(tmp_path / "data"),
        "PERSONAMINT_PORT": str(port),
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert serve.stdout is not None
        printed: list[str] = []
        deadline = time.monotonic() + 120
        while not any(line.startswith("API key (tenant 'local'): ") for line in printed):
            line = serve.stdout.readline()
            assert line or serve.poll() is None, "serve exited:\n" + "".join(printed)
            printed.append(line)
            assert time.monotonic() < deadline, "".join(printed)
        output = "".join(printed)
        api_key = re.search(r"API key \(tenant 'local'\): (pm_\S+)", output)
        contract = re.search(r"0x[0-9a-fA-F]{40}", output)
        assert api_key is not None, output
        assert contract is not None, output
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as anonymous:
            assert anonymous.get("/health").status_code == 200
            assert anonymous.get("/schema/openapi.json").json()["info"]["title"] == "Persona Mint"
        with httpx.Client(
            base_url=base, timeout=10, trust_env=False, headers={"Authorization": f"Bearer {api_key.group(1)}"}
        ) as client:
            status = _confirmed(client, "serve-1")
            # The first 0x-address serve prints is the collection's contract: the token was minted there.
            assert status["contract"] == contract.group(0)
            preview = client.post("/v1/previews", json={"recipient": RECIPIENT})
            assert preview.status_code == 200, preview.text  # the key holds the preview scope too
            # serve supervises its children: a worker killed outright is started again, and mints go on.
            worker = _child_running(serve.pid, "worker")
            assert worker is not None
            os.kill(worker, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while _child_running(serve.pid, "worker") in (None, worker):
                assert time.monotonic() < deadline, "the worker was not restarted"
                time.sleep(0.1)
            assert _confirmed(client, "serve-2")["contract"] == contract.group(0)
        children = _descendants(serve.pid)
        assert len(children) >= 6, children  # redis-server, anvil, api, worker, minter, housekeeper
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {pid for pid in children if _alive(pid)} == set()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
