"""Run a local anvil node as a child process, and its well-known dev accounts."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from chain.errors import AnvilError

ANVIL_BIN_ENV = "PERSONAMINT_ANVIL_BIN"


DEFAULT_PORT = 8545


_READY_POLL_S = 0.05


_STDERR_TAIL = 2000


# Loopback probes must not go through an http_proxy from the environment.
_LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


_PROJECT_ROOT = Path(__file__).resolve().parent.parent


_OS_NAMES = {"linux": "linux", "darwin": "darwin", "win32": "win32"}


_ARCH_NAMES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
}


def _npm_platform_dir() -> str | None:
    os_name = _OS_NAMES.get(sys.platform)
    arch = _ARCH_NAMES.get(platform.machine().lower())
    if os_name is None or arch is None:
        return None
    return f"anvil-{os_name}-{arch}"


def find_anvil_binary(project_root: Path | None = None) -> Path:
    """Locate anvil: $PERSONAMINT_ANVIL_BIN, the npm platform package, then PATH."""
    from_env = os.environ.get(ANVIL_BIN_ENV)
    if from_env:
        path = Path(from_env).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise AnvilError(f"{ANVIL_BIN_ENV}={from_env} is not an executable file")
        return path
    root = project_root or _PROJECT_ROOT
    platform_dir = _npm_platform_dir()
    if platform_dir is not None:
        exe = "anvil.exe" if sys.platform == "win32" else "anvil"
        candidate = root / "node_modules" / "@foundry-rs" / platform_dir / "bin" / exe
        if candidate.is_file():
            return candidate
    on_path = shutil.which("anvil")
    if on_path is not None:
        return Path(on_path)
    raise AnvilError(
        f"anvil not found: run `npm ci` in {root} (installs @foundry-rs/anvil), "
        f"put anvil on PATH, or set {ANVIL_BIN_ENV}"
    )


def free_port() -> int:
    """A currently free loopback TCP port, never anvil's default 8545."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        # A developer's own anvil usually sits on 8545; never collide with it.
        if port != DEFAULT_PORT:
            return port


class AnvilProcess:
    """An anvil child process on 127.0.0.1; start() blocks until it answers RPC.

    Use as `with AnvilProcess() as node:` (or `async with`, which starts and stops it
    off the event loop). `state_path` makes anvil load state from, and dump it back to, that
    file, so a local chain survives restarts.
    """

    def __init__(
        self,
        *,
        binary: Path | None = None,
        port: int | None = None,
        block_time: float | None = None,
        state_path: Path | None = None,
        chain_id: int | None = None,
        gas_limit: int | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._binary = binary
        self._requested_port = port
        self._block_time = block_time
        self._state_path = state_path
        self._chain_id = chain_id
        self._gas_limit = gas_limit
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._port: int | None = None
        self._chain_id_seen: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise AnvilError("anvil is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chain_id(self) -> int:
        """Chain id reported by the running node."""
        if self._chain_id_seen is None:
            raise AnvilError("anvil is not running")
        return self._chain_id_seen

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self, binary: Path, port: int) -> list[str]:
        command = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--quiet"]
        if self._block_time is not None:
            command += ["--block-time", f"{self._block_time:g}"]
        if self._state_path is not None:
            command += ["--state", str(self._state_path)]
        if self._chain_id is not None:
            command += ["--chain-id", str(self._chain_id)]
        if self._gas_limit is not None:
            command += ["--gas-limit", str(self._gas_limit)]
        return command + list(self._extra_args)

    def start(self) -> Self:
        if self._process is not None:
            raise AnvilError("anvil already started")
        binary = self._binary or find_anvil_binary()
        # With a free port picked up front another process can grab it before anvil
        # binds; retry a few times on early exit unless the caller fixed the port.
        attempts = 1 if self._requested_port is not None else 3
        last_error: AnvilError | None = None
        for _ in range(attempts):
            port = self._requested_port or free_port()
            try:
                self._launch(binary, port)
                return self
            except AnvilError as exc:
                last_error = exc
                self._cleanup()
        assert last_error is not None
        raise last_error

    def _launch(self, binary: Path, port: int) -> None:
        # Kept open for the process's lifetime (closed in _cleanup), so no `with`.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                self._command(binary, port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        except OSError as exc:
            raise AnvilError(f"cannot execute {binary}: {exc.strerror}") from exc
        self._port = port
        deadline = time.monotonic() + self._startup_timeout
        while True:
            exit_code = self._process.poll()
            if exit_code is not None:
                raise AnvilError(f"anvil exited with code {exit_code}: {self._stderr_tail()}")
            chain_id = _probe_chain_id(self.url)
            # An answer while our child has died came from someone else's node on a port
            # taken in the meantime; the loop's next poll() reports the exit instead.
            if chain_id is not None and self._process.poll() is None:
                self._chain_id_seen = chain_id
                return
            if time.monotonic() > deadline:
                raise AnvilError(
                    f"anvil did not answer eth_chainId on {self.url} within "
                    f"{self._startup_timeout:g}s: {self._stderr_tail()}"
                )
            time.sleep(_READY_POLL_S)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return "(no stderr)"
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - _STDERR_TAIL))
        tail = self._stderr.read().decode("utf-8", "replace").strip()
        return tail or "(no stderr)"

    def stop(self) -> None:
        """Stop anvil: SIGINT (so it can dump --state), SIGKILL after the grace period."""
        process = self._process
        if process is not None and process.poll() is None:
            if sys.platform == "win32":
                process.terminate()
            else:
                # anvil writes --state when interrupted like Ctrl-C.
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._process = None
        self._port = None
        self._chain_id_seen = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "stopped"
        return f"<AnvilProcess {where}>"


def _probe_chain_id(url: str) -> int | None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    # The URL is always our own http://127.0.0.1:<port>, never user input.
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with _LOOPBACK_OPENER.open(request, timeout=1.0) as response:
            answer = json.load(response)
    except (OSError, ValueError):
        # Not listening yet (connection refused) or a half-started server.
        return None
    result = answer.get("result")
    return int(result, 16) if isinstance(result, str) else None
