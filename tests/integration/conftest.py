"""Integration fixtures: real redis-server, real anvil, the real service processes, on free ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.auth import create_api_key
from api.local import RedisServer, ServiceProcesses, deploy_local_contract, service_env
from chain.anvil import AnvilProcess, free_port


@dataclass
class Stack:
    redis: RedisServer
    anvil: AnvilProcess
    services: ServiceProcesses
    contract_address: str
    chain_id: int
    api_key: str
    data_dir: Path

    @property
    def base_url(self) -> str:
        return self.services.base_url

    def client(self, api_key: str | None = None) -> httpx.Client:
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


async def _key(redis_url: str, tenant: str) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        return (await create_api_key(client, tenant))[1]
    finally:
        await client.aclose()


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
            extra={"PERSONAMINT_SWEEP_S": "1", "PERSONAMINT_JOB_HEARTBEAT_S": "5"},
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
            )
        finally:
            services.stop()
