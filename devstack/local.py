"""Local mode: start the real parts a fresh machine lacks (redis-server, anvil), deploy, spawn processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis as redis_sync

from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess, free_port

# anvil's dev accounts (public keys): 0 administers the contract, 1 is the service's hot minter.
ADMIN_ACCOUNT = 0
MINTER_ACCOUNT = 1
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_log = logging.getLogger("personamint.devstack")


class LocalStackError(RuntimeError):
    """A local part could not be started."""


class RedisServer:
    """A redis-server child on a free loopback port, AOF on, data in its own directory.

    `appendfsync no`: Redis writes each command to the AOF before it replies, and a kill -9 of
    redis-server loses nothing it acknowledged (the page cache keeps the file). Redis' default,
    everysec, may postpone that write behind a slow background fsync (up to 2 s) while replies go
    out, so an accepted mint could vanish with the process; `always` closes that too and survives
    a power cut, at ~0.25 ms more per write on this disk (and 100 ms stalls when a preview's 2 MiB
    PNG is fsynced): a production choice (compose.yaml), not a dev stack's. `extra_args`: more
    redis-server options (`--replicaof host port` for a replica).
    """

    def __init__(self, data_dir: Path, *, port: int | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise LocalStackError("redis-server is not installed; run `make install` (apt-get install redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "no",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                "redis.log",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        client = redis_sync.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise LocalStackError(f"redis-server exited: {self.process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            try:
                if client.ping():
                    break
            except redis_sync.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LocalStackError("redis-server did not answer in time")
            time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """kill -9: for crash tests."""
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ChainInfo:
    rpc_url: str
    chain_id: int
    contract_address: str
    admin_key: str
    signer_key: str


async def deploy_local_contract(rpc_url: str, state_file: Path | None = None) -> tuple[str, int]:
    """Deploy PersonaMint unless the saved address still has code on this chain."""
    from chain.contract import deploy_persona_mint
    from chain.web3 import connect_web3

    w3 = connect_web3(rpc_url)
    chain_id = await w3.eth.chain_id
    if state_file and state_file.exists():
        saved = json.loads(state_file.read_text())
        if saved.get("chain_id") == chain_id and len(await w3.eth.get_code(saved["contract_address"])) > 0:
            return saved["contract_address"], chain_id
    admin, minter = dev_account(ADMIN_ACCOUNT), dev_account(MINTER_ACCOUNT)
    deployment = await deploy_persona_mint(
        w3,
        admin,
        name="Persona Mint Genesis",
        symbol="PMINT",
        admin=admin.address,
        minter=minter.address,
        contract_uri="",
        royalty_receiver=admin.address,
        royalty_bps=500,
    )
    if state_file:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({"chain_id": chain_id, "contract_address": deployment.address}))
    return deployment.address, chain_id


# What `serve` runs its pipeline workers and its preview worker with (PERSONAMINT_WORKER_QUEUES, _NICE).
PIPELINE_WORKER_ENV = {"PERSONAMINT_WORKER_QUEUES": '["pipeline"]'}
PREVIEW_WORKER_ENV = {
    "PERSONAMINT_WORKER_QUEUES": '["preview"]',
    "PERSONAMINT_WORKER_NICE": "10",
    "PERSONAMINT_WORKER_IDLE_CPU": "true",
}


class ServiceProcesses:
    """The API, pipeline workers, the minter and the housekeeper as separate OS processes, as in production."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        port: int,
        log_dir: Path,
        workers: int = 1,
        minter_chains: Sequence[int] = (),
    ) -> None:
        self.env = {**os.environ, **env, "PERSONAMINT_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        self.port = port
        self.log_dir = log_dir
        self.workers = workers
        # Chains besides the default one: each gets a minter of its own, `minter-<chain id>`.
        self.minter_chains = tuple(minter_chains)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, str] = {}  # name → the `personamint` subcommand it runs
        self.process_env: dict[str, dict[str, str]] = {}  # name → settings of its own (over `env`)
        self.restarts: dict[str, int] = {}  # name → restarts so far (what `supervise` did)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, name: str, command: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `personamint <command>` as `name`; `env`: settings of its own, kept for its restarts."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if env is not None:
            self.process_env[name] = env
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", command],
            env={**self.env, **self.process_env.get(name, {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
        log.close()
        self.processes[name] = process
        self.commands[name] = command
        return process

    def supervise(self, *, poll_s: float = 0.2, backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        """Keep the children running until the API exits: a worker, minter or housekeeper that exits
        is restarted (after a backoff that doubles on each quick death and resets once a child has
        run a minute), with a log line each time. The API exiting raises LocalStackError: serve is
        over. Returns only by that, or by KeyboardInterrupt (Ctrl-C, SIGTERM in serve)."""
        started = {name: time.monotonic() for name in self.processes}
        quick_deaths: dict[str, int] = {}
        due: dict[str, float] = {}  # name → when its restart is due
        while True:
            now = time.monotonic()
            for name, process in list(self.processes.items()):
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        self.spawn(name, self.commands[name])
                        self.restarts[name] = self.restarts.get(name, 0) + 1
                        started[name] = time.monotonic()
                        _log.warning("%s restarted (restart %d)", name, self.restarts[name])
                    continue
                code = process.poll()
                if code is None:
                    continue
                if name == "api":
                    raise LocalStackError(f"the API exited with {code}; see {self.log_dir / 'api.log'}")
                ran_s = now - started.get(name, now)
                quick_deaths[name] = 0 if ran_s >= 60 else quick_deaths.get(name, 0) + 1
                delay = min(max_backoff_s, backoff_s * 2 ** max(0, quick_deaths[name] - 1))
                due[name] = now + delay
                _log.warning(
                    "%s exited unexpectedly with %s after %.1f s; restarting in %.1f s (log: %s)",
                    name,
                    code,
                    ran_s,
                    delay,
                    self.log_dir / f"{name}.log",
                )
            time.sleep(poll_s)

    def start(self, timeout_s: float = 60.0) -> ServiceProcesses:
        self.spawn("api", "api")
        for index in range(self.workers):
            self.spawn(f"worker-{index}", "worker", PIPELINE_WORKER_ENV)
        # Previews in a process of their own at a lower CPU priority: on a shared machine, the
        # mints' renders come first (a preview is speculative; a caller may ask again).
        self.spawn("previewer", "worker", PREVIEW_WORKER_ENV)
        self.spawn("minter", "minter")
        for chain_id in self.minter_chains:
            self.spawn(f"minter-{chain_id}", "minter", {"PERSONAMINT_MINTER_CHAIN_ID": str(chain_id)})
        self.spawn("housekeeper", "housekeeper")
        deadline = time.monotonic() + timeout_s
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    tail = (self.log_dir / f"{name}.log").read_text()[-2000:]
                    raise LocalStackError(f"{name} exited with {process.returncode}:\n{tail}")
            try:
                with _LOOPBACK.open(f"{self.base_url}/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LocalStackError("the API did not become healthy in time")
            time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class LocalStack:
    """Everything `serve`, `demo` and the tests need on one machine, all real, all on loopback."""

    def __init__(self, data_dir: Path, *, persistent: bool, block_time: float | None = None) -> None:
        self.data_dir = data_dir
        self.persistent = persistent
        self.block_time = block_time
        self._stack = ExitStack()
        self.redis: RedisServer | None = None
        self.anvil: AnvilProcess | None = None
        self.chains: dict[int, AnvilProcess] = {}  # the other chains' anvils, by chain id

    def start(self, *, redis_url: str | None = None, rpc_url: str | None = None) -> tuple[str, str]:
        """Start what is missing; returns (redis_url, rpc_url)."""
        if not self.persistent and self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if redis_url is None:
            self.redis = self._stack.enter_context(RedisServer(self.data_dir / "redis"))
            redis_url = self.redis.url
        if rpc_url is None:
            state = self.data_dir / "anvil-state.json" if self.persistent else None
            self.anvil = self._stack.enter_context(AnvilProcess(block_time=self.block_time, state_path=state))
            rpc_url = self.anvil.url
        return redis_url, rpc_url

    def start_chain(self, chain_id: int) -> AnvilProcess:
        """One more anvil, for collections that name `chain_id` and no RPC URL (state kept when persistent)."""
        state = self.data_dir / f"anvil-{chain_id}-state.json" if self.persistent else None
        anvil = AnvilProcess(block_time=self.block_time, state_path=state, chain_id=chain_id)
        self.chains[chain_id] = self._stack.enter_context(anvil)
        return anvil

    def stop(self) -> None:
        self._stack.close()


def local_chain_ids(collections_dir: Path, *, default_chain_id: int, configured: Iterable[int] = ()) -> list[int]:
    """The chains local mode starts an anvil for: named by a collection without rpc_urls, not the default
    chain, not one PERSONAMINT_CHAINS already points at."""
    from config.collections import load_collection_configs

    known = {default_chain_id, *configured}
    named = {
        config.chain.chain_id
        for config in load_collection_configs(collections_dir).values()
        if config.chain is not None and not config.chain.rpc_urls
    }
    return sorted(named - known)


async def deploy_local_chains(anvils: Mapping[int, AnvilProcess], state_dir: Path | None) -> dict[str, object]:
    """Deploy a contract on each chain; PERSONAMINT_CHAINS's value for them (chain id → rpc_url, contract)."""
    chains: dict[str, object] = {}
    for chain_id, anvil in anvils.items():
        state = state_dir / f"chain-{chain_id}.json" if state_dir is not None else None
        address, _ = await deploy_local_contract(anvil.url, state)
        chains[str(chain_id)] = {"rpc_url": anvil.url, "contract_address": address}
    return chains


def service_env(
    *,
    redis_url: str,
    rpc_url: str,
    contract_address: str,
    chain_id: int,
    data_dir: Path,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for child processes; the signer is anvil's public dev key, local only."""
    return {
        "PERSONAMINT_ENV": "local",
        "PERSONAMINT_REDIS_URL": redis_url,
        "PERSONAMINT_RPC_URL": rpc_url,
        "PERSONAMINT_CONTRACT_ADDRESS": contract_address,
        "PERSONAMINT_CHAIN_ID": str(chain_id),
        "PERSONAMINT_SIGNER_KEY": dev_account(MINTER_ACCOUNT).key.hex(),
        "PERSONAMINT_DATA_DIR": str(data_dir),
        # Local receivers (a developer's own webhook endpoint) are on loopback; never link-local.
        "PERSONAMINT_WEBHOOK_ALLOW_LOOPBACK": "true",
        **(extra or {}),
    }


@dataclass
class DeployedServices:
    """A fresh Redis and anvil with the contract deployed, and the service processes on them."""

    redis: RedisServer
    anvil: AnvilProcess
    services: ServiceProcesses
    contract_address: str
    chain_id: int
    env: dict[str, str]
    chains: dict[str, object] = dataclasses.field(default_factory=dict)  # PERSONAMINT_CHAINS's value


@contextlib.contextmanager
def deployed_services(
    root: Path,
    *,
    extra: dict[str, str] | None = None,
    chains: Mapping[int, AnvilProcess] | None = None,
    block_time: float | None = None,
) -> Iterator[DeployedServices]:
    """Redis, anvil + the contract and every service process, all under `root`, stopped after.

    `chains`: more running anvils by chain id (the caller's, so it can stop and restart them); each
    gets a contract, a PERSONAMINT_CHAINS entry and a minter of its own. `ServiceProcesses.start`
    returns once the API is healthy, failing if any process exits meanwhile.
    """
    with RedisServer(root / "redis") as redis_server, AnvilProcess(block_time=block_time) as anvil:
        address, chain_id = asyncio.run(deploy_local_contract(anvil.url))
        more = asyncio.run(deploy_local_chains(chains, None)) if chains else {}
        env = service_env(
            redis_url=redis_server.url,
            rpc_url=anvil.url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=root / "data",
            extra={**({"PERSONAMINT_CHAINS": json.dumps(more)} if more else {}), **(extra or {})},
        )
        services = ServiceProcesses(env, port=free_port(), log_dir=root / "logs", minter_chains=list(chains or ()))
        try:
            # Inside the try: a process that fails to start must not leave its siblings running.
            services.start()
            yield DeployedServices(redis_server, anvil, services, address, chain_id, env, more)
        finally:
            services.stop()


async def new_api_key(redis_url: str, tenant: str) -> str:
    """A fresh API key with every scope for `tenant`: what `serve` and the demo print and use."""
    from api.keys import create_api_key
    from config.redis_urls import redis_client

    client = redis_client(redis_url)
    try:
        _, api_key = await create_api_key(client, tenant)
    finally:
        await client.aclose()
    return api_key
