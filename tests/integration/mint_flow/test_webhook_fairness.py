"""Fair webhook delivery: a tenant whose endpoint is slow holds only its own delivery slots."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from jobs.keys import DELIVERIES_DUE_KEY, tenant_deliveries_key, webhook_endpoint_key
from jobs.outbox import set_endpoint
from tests.support.outbox import put_delivery
from tests.support.stack import Stack
from tests.support.webhook_receiver import WebhookReceiver


def test_a_slow_tenant_does_not_delay_another_tenants_webhooks(stack: Stack) -> None:
    slow_tenant, quick_tenant = "tenant-slow-hooks", "tenant-quick-hooks"
    with WebhookReceiver(hang_s=5) as slow, WebhookReceiver() as quick:

        async def setup() -> None:
            redis = Redis.from_url(stack.redis.url)
            try:
                await set_endpoint(redis, slow_tenant, slow.url, allow_loopback=True)
                await set_endpoint(redis, quick_tenant, quick.url, allow_loopback=True)
                for _ in range(40):  # far more than a batch: every one waits its full timeout
                    await put_delivery(redis, slow_tenant)
            finally:
                await redis.aclose()

        async def one_quick() -> None:
            redis = Redis.from_url(stack.redis.url)
            try:
                await put_delivery(redis, quick_tenant)
            finally:
                await redis.aclose()

        async def cleanup() -> None:
            redis = Redis.from_url(stack.redis.url)
            try:
                ids = await redis.zrange(tenant_deliveries_key(slow_tenant), 0, -1)
                if ids:
                    await redis.zrem(DELIVERIES_DUE_KEY, *ids)
                await redis.delete(webhook_endpoint_key(slow_tenant))
            finally:
                await redis.aclose()

        asyncio.run(setup())
        try:
            slow.wait_for(1, timeout_s=10)  # the slow endpoint is busy now
            time.sleep(0.5)
            sent = time.monotonic()
            asyncio.run(one_quick())
            quick.wait_for(1, timeout_s=10)
            lag = time.monotonic() - sent
        finally:
            asyncio.run(cleanup())
    assert lag < 1.5, f"the quick tenant's webhook waited {lag:.1f} s behind the slow one"
