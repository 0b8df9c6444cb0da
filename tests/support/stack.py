"""The whole service as in production for integration tests: real Redis, anvil and service processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.keys import create_api_key
from devstack.anvil import AnvilProcess, free_port
from devstack.local import RedisServer, ServiceProcesses, deployed_services

# The inbound reward webhook source the tests sign events for.
WEBHOOK_SOURCE = "game"
WEBHOOK_SECRET = "whsec_test_only_0123456789abcdef"
WEBHOOK_TENANT = "game-studio"
# The stack's ops credential (PERSONAMINT_OPS_TOKEN): /ready's details and /metrics.
OPS_TOKEN = "pmops_test_only_0123456789abcdef"

# What the stack's processes run with besides the local defaults: sweeps, reconciles and
# outbound webhook retries fast enough that the tests of them take seconds, not hours.
STACK_ENV = {
    "PERSONAMINT_SWEEP_S": "1",
    "PERSONAMINT_HISTORY_HEAD_TTL_S": "0",
    "PERSONAMINT_JOB_HEARTBEAT_S": "5",
    # Jobs a queue lost (a sweeper killed mid-sweep) come back within seconds.
    "PERSONAMINT_RECONCILE_S": "1",
    "PERSONAMINT_RECONCILE_AFTER_S": "10",
    # Outbound webhooks retry fast here so the retry tests take a second, not an hour.
    "PERSONAMINT_WEBHOOK_BACKOFF_BASE_S": "0.05",
    "PERSONAMINT_WEBHOOK_BACKOFF_MAX_S": "0.5",
    "PERSONAMINT_WEBHOOK_MAX_ATTEMPTS": "4",
    "PERSONAMINT_WEBHOOK_TIMEOUT_S": "2",
    "PERSONAMINT_WEBHOOK_POLL_S": "0.05",
    # The test receivers listen on 127.0.0.1 (service_env allows loopback too; stated here for the tests).
    "PERSONAMINT_WEBHOOK_ALLOW_LOOPBACK": "true",
    # Every SIWE test signs in from 127.0.0.1: a nonce limit the whole suite stays under.
    "PERSONAMINT_SIWE_NONCE_RATE_PER_MIN": "600",
    "PERSONAMINT_SIWE_NONCE_BURST": "200",
    # The ops credential for /ready's details and /metrics.
    "PERSONAMINT_OPS_TOKEN": OPS_TOKEN,
    "PERSONAMINT_WEBHOOK_SOURCES": json.dumps(
        {
            WEBHOOK_SOURCE: {
                "secret": WEBHOOK_SECRET,
                "tenant": WEBHOOK_TENANT,
                "tolerance_s": 300,
                "events": {"achievement.unlocked": {"collection": "default"}},
            }
        }
    ),
}

# How much of the minter's and worker's logs a failed test's report shows.
LOG_TAIL_LINES = 25

_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Stack:
    """A running stack: `services` holds every process by name (api, worker-N, minter, housekeeper, extras)."""

    redis: RedisServer
    anvil: AnvilProcess
    services: ServiceProcesses
    contract_address: str
    chain_id: int
    api_key: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.services.base_url

    def new_key(self, tenant: str, **options: object) -> str:
        """A fresh API key (scopes, collections, rate_per_min, burst as keyword options)."""
        return asyncio.run(issue_api_key(self.redis.url, tenant, **options))

    def spawn(self, name: str, command: str, extra_env: dict[str, str] | None = None) -> ServiceProcesses:
        """Another service process (api | worker | minter | housekeeper) on this stack, stopped with it."""
        extra = ServiceProcesses({**self.env, **(extra_env or {})}, port=free_port(), log_dir=self.services.log_dir)
        extra.spawn(name, command)
        self.services.processes[name] = extra.processes[name]
        return extra

    def spawn_api(self, name: str, extra_env: dict[str, str]) -> str:
        """Another API process on the same Redis and chain with other settings; returns its base URL."""
        extra = self.spawn(name, "api", extra_env)
        wait_healthy(extra.base_url, self.services.processes[name], self.services.log_dir / f"{name}.log")
        return extra.base_url

    def client(self, api_key: str | None = None) -> httpx.Client:
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


async def issue_api_key(redis_url: str, tenant: str, **options: object) -> str:
    """A fresh API key for `tenant` (scopes, collections, rate_per_min, burst as keyword options)."""
    from config.redis_urls import redis_client

    client = redis_client(redis_url)  # a redis+sentinel:// URL too
    try:
        return (await create_api_key(client, tenant, **options))[1]  # type: ignore[arg-type]
    finally:
        await client.aclose()


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], log_file: Path, timeout_s: float = 60.0) -> None:
    """Wait for one API process's /health; raise with its log tail if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"API exited:\n{log_file.read_text()[-2000:]}")
        try:
            with _LOOPBACK.open(f"{base_url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("API did not become healthy")


@contextlib.contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    """Redis, anvil with the contract deployed, and the service processes, all under `root`, stopped after.

    `ServiceProcesses.start` spawns the API, the workers, the minter and the housekeeper
    (reconciler + webhook deliverer) and returns once the API is healthy, failing if any of
    them exits meanwhile.
    """
    with deployed_services(root, extra=STACK_ENV) as deployed:
        yield Stack(
            redis=deployed.redis,
            anvil=deployed.anvil,
            services=deployed.services,
            contract_address=deployed.contract_address,
            chain_id=deployed.chain_id,
            api_key=asyncio.run(issue_api_key(deployed.redis.url, "tenant-a")),
            data_dir=root / "data",
            env=deployed.env,
        )


def processes_report(running: Stack) -> str:
    """Which of the stack's processes still run, and the last lines of the logs of the minter, the
    worker and every process that has exited (one a test started and stopped, one that died)."""
    services = running.services
    lines = [
        f"{name}: {'running' if proc.poll() is None else f'exited {proc.returncode}'}"
        for name, proc in services.processes.items()
    ]
    exited = [name for name, proc in services.processes.items() if proc.poll() is not None]
    for name in dict.fromkeys(["minter", "worker-0", *exited]):
        log_file = services.log_dir / f"{name}.log"
        if log_file.exists():
            tail = log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            lines += [f"--- {name}.log (last {len(tail)} lines)", *tail]
    return "\n".join(lines)
