"""Integration fixtures: real redis-server, real anvil, the real service processes, on free ports."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api.keys import create_api_key
from devstack.anvil import AnvilProcess, free_port
from devstack.local import RedisServer, ServiceProcesses, deploy_local_contract, service_env


@dataclass
class Stack:
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
        return asyncio.run(_key(self.redis.url, tenant, **options))

    def spawn(self, name: str, command: str, extra_env: dict[str, str] | None = None) -> ServiceProcesses:
        """Another service process (api | worker | minter) on this stack, stopped with it."""
        extra = ServiceProcesses({**self.env, **(extra_env or {})}, port=free_port(), log_dir=self.services.log_dir)
        extra.spawn(name, command)
        self.services.processes[name] = extra.processes[name]
        return extra

    def spawn_api(self, name: str, extra_env: dict[str, str]) -> str:
        """Another API process on the same Redis and chain with other settings; returns its base URL."""
        extra = self.spawn(name, "api", extra_env)
        _wait_healthy(extra.base_url, self.services.processes[name], self.services.log_dir / f"{name}.log")
        return extra.base_url

    def client(self, api_key: str | None = None) -> httpx.Client:
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


async def _key(redis_url: str, tenant: str, **options: object) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        return (await create_api_key(client, tenant, **options))[1]  # type: ignore[arg-type]
    finally:
        await client.aclose()


_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait_healthy(base_url: str, process: object, log_file: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:  # type: ignore[attr-defined]
            raise RuntimeError(f"API exited:\n{log_file.read_text()[-2000:]}")
        try:
            with _LOOPBACK.open(f"{base_url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("API did not become healthy")


# The inbound reward webhook source the tests sign events for.
WEBHOOK_SOURCE = "game"
WEBHOOK_SECRET = "whsec_test_only_0123456789abcdef"
WEBHOOK_TENANT = "game-studio"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole service as in production: API, worker and minter processes on real Redis and anvil."""
    root = tmp_path_factory.mktemp("stack")
    with RedisServer(root / "redis") as redis_server, AnvilProcess() as anvil:
        address, chain_id = asyncio.run(deploy_local_contract(anvil.url))
        env = service_env(
            redis_url=redis_server.url,
            rpc_url=anvil.url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=root / "data",
            extra={
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
            },
        )
        services = ServiceProcesses(env, port=free_port(), log_dir=root / "logs").start()
        try:
            yield Stack(
                redis=redis_server,
                anvil=anvil,
                services=services,
                contract_address=address,
                chain_id=chain_id,
                api_key=asyncio.run(_key(redis_server.url, "tenant-a")),
                data_dir=root / "data",
                env=env,
            )
        finally:
            services.stop()
