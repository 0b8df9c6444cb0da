"""The egress policy at delivery: a host that resolves to a refused address is dead-lettered, never contacted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devstack.local import RedisServer
from jobs.keys import delivery_key, webhook_endpoint_key
from jobs.outbox import DeliveryStore, set_endpoint
from jobs.store import JobStore
from processes.webhook_deliverer import RetryPolicy, WebhookDeliverer
from tests.support.outbox import ConnectionRecorder, put_delivery
from webhooks.egress import EgressPolicy

POLICY = RetryPolicy(max_attempts=3, base_s=0.01, max_s=0.05, timeout_s=2.0)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(Path(tmp_path_factory.mktemp("egress-redis"))) as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


async def deliver_once(redis: Redis, *, allow_loopback: bool) -> None:
    deliverer = WebhookDeliverer(redis, JobStore(redis), POLICY, egress=EgressPolicy(allow_loopback=allow_loopback))
    try:
        await deliverer.run_once()
    finally:
        await deliverer.stop()


async def test_a_name_resolving_to_loopback_is_refused_after_dns_and_never_contacted(redis: Redis) -> None:
    with ConnectionRecorder() as listener:
        # `localhost` is a name: it passes registration and is vetted where it is resolved, at delivery.
        await set_endpoint(redis, "tenant-rebind", f"http://localhost:{listener.port}/hooks")
        delivery_id = await put_delivery(redis, "tenant-rebind")
        await deliver_once(redis, allow_loopback=False)
        time.sleep(0.3)
        assert listener.connections == 0
        record = await DeliveryStore(redis).get(delivery_id)
        assert record is not None
        assert record.state == "dead"
        assert record.last_error == "egress_refused"  # generic: no address, no resolver detail
        assert record.attempts == 1

        # The same endpoint with loopback receivers allowed does connect: the listener counts.
        again = await put_delivery(redis, "tenant-rebind")
        await deliver_once(redis, allow_loopback=True)
        assert listener.connections == 1
        delivered = await DeliveryStore(redis).get(again)
        assert delivered is not None
        assert delivered.state == "delivered"


async def test_an_endpoint_stored_before_the_policy_is_refused_at_delivery(redis: Redis) -> None:
    with ConnectionRecorder() as listener:
        # Written around set_endpoint (as a record from before the policy would be).
        url = f"http://2130706433:{listener.port}/hooks"
        await redis.set(webhook_endpoint_key("tenant-old"), f'{{"url": "{url}", "secret": "whsec_x"}}')
        delivery_id = await put_delivery(redis, "tenant-old")
        await deliver_once(redis, allow_loopback=False)
        assert listener.connections == 0
        fields = await redis.hgetall(delivery_key(delivery_id))
        assert fields[b"state"] == b"dead"
        assert fields[b"last_error"] == b"egress_refused"


async def test_refused_urls_are_not_stored(redis: Redis) -> None:
    for url in (
        "http://169.254.169.254/",
        "http://0x7f000001/",
        "http://metadata.google.internal/",
        "http://[fd00::1]/",
    ):
        with pytest.raises(ValueError, match="refused"):
            await set_endpoint(redis, "tenant-ssrf", url)
    assert await redis.get(webhook_endpoint_key("tenant-ssrf")) is None


async def test_network_failures_are_shown_as_a_class_only(redis: Redis) -> None:
    with ConnectionRecorder() as listener:
        port = listener.port
    # Nothing listens there any more: a refused connection, recorded as `refused`, no errno or address.
    await set_endpoint(redis, "tenant-down", f"http://127.0.0.1:{port}/hooks", allow_loopback=True)
    delivery_id = await put_delivery(redis, "tenant-down")
    await deliver_once(redis, allow_loopback=True)
    record = await DeliveryStore(redis).get(delivery_id)
    assert record is not None
    assert record.last_error == "refused"
