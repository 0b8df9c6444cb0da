"""The minter's Redis connections stay within its pool (PERSONAMINT_REDIS_MAX_CONNECTIONS, 64 by default)
whatever its mint_concurrency (512 by default): its idle SAQ slots take turns at one blocking dequeue."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psutil
import redis as redis_sync
from eth_account import Account

from config.settings import Settings
from tests.support.stack import Stack


def _redis_connections(pid: int, port: int) -> int:
    return sum(
        1
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )


def test_the_minter_holds_a_bounded_number_of_redis_connections_under_load(stack: Stack) -> None:
    bound = Settings.model_fields["redis_max_connections"].default
    assert Settings.model_fields["mint_concurrency"].default > bound  # the stack's minter runs at the default
    minter = stack.services.processes["minter"]
    port = urlsplit(stack.redis.url).port
    assert port is not None
    peak = 0
    with stack.client() as client:
        job_ids = [
            client.post("/v1/mints", json={"recipient": Account.create().address}).json()["id"] for _ in range(24)
        ]
        deadline = time.monotonic() + 120
        pending = set(job_ids)
        while pending and time.monotonic() < deadline:
            peak = max(peak, _redis_connections(minter.pid, port))
            for job_id in list(pending):
                if client.get(f"/v1/mints/{job_id}").json()["status"] in ("confirmed", "failed"):
                    pending.discard(job_id)
            time.sleep(0.05)
    assert not pending, f"{len(pending)} mints did not finish"
    assert 0 < peak <= bound, peak
    admin = redis_sync.Redis.from_url(stack.redis.url)
    try:
        named = [c for c in admin.client_list() if c.get("name") == "personamint-minter"]
    finally:
        admin.close()
    assert 0 < len(named) <= bound, len(named)
