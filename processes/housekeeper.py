"""The housekeeper process: the reconciler and the webhook deliverer as two named loops of one process.

Both are light, Redis-bound loops that any number of copies may run (re-enqueues are keyed,
deliveries are claimed atomically), so one process on any machine that reaches Redis hosts
both. Each loop is built by its own module (`processes/reconciler.py`,
`processes/webhook_deliverer.py`); this is their composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from prometheus_client import CollectorRegistry, Counter

from config.clients import Core
from config.settings import Settings
from jobs.minters import WAITING_FOR_MINTER, has_live_minter, waiting_for_minter
from jobs.model import JobStatus
from jobs.queues import enqueue_mint
from observability.metrics import serve_process_metrics
from processes.reconciler import Reconciler
from processes.webhook_deliverer import RetryPolicy, WebhookDeliverer
from webhooks.egress import EgressPolicy

log = logging.getLogger("personamint.housekeeper")


async def requeue_mint(core: Core, job_id: str) -> None:
    """Put a minting job back on its chain's mint queue (keyed: a no-op while the queue holds it);
    when that chain has no live minter, the job's status says it waits for one."""
    job = await core.jobs.get(job_id)
    if job is None or job.status.ended:
        return
    chain = core.chain_for(job.collection)
    await enqueue_mint(core.mint_queue_for(job.collection), core.settings, job_id)
    if job.status is not JobStatus.MINTING:  # a voucher out keeps its status: only the watch is restored
        return
    if not await has_live_minter(core.redis, chain.key) and not (job.detail or "").startswith(WAITING_FOR_MINTER):
        await core.jobs.set_status(job_id, JobStatus.MINTING, detail=waiting_for_minter(chain.label))


def build_reconciler(settings: Settings, core: Core) -> Reconciler:
    return Reconciler(
        core.jobs,
        fair=core.fair,
        lane=core.fair_lane,
        enqueue_mint=lambda job_id: requeue_mint(core, job_id),
        every_s=settings.reconcile_s,
        after_s=settings.reconcile_after_s,
    )


def build_deliverer(settings: Settings, core: Core, deliveries: Counter) -> WebhookDeliverer:
    return WebhookDeliverer(
        core.redis,
        core.jobs,
        RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            base_s=settings.webhook_backoff_base_s,
            max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s,
        ),
        poll_s=settings.webhook_poll_s,
        concurrency=settings.webhook_concurrency,
        tenant_concurrency=settings.webhook_tenant_concurrency,
        egress=EgressPolicy(allow_loopback=settings.webhook_allow_loopback),
        on_outcome=lambda outcome: deliveries.labels(outcome).inc(),
    )


async def run_housekeeper(settings: Settings) -> None:
    """Run both loops until SIGTERM/SIGINT; each stops cleanly, the deliverer after its attempt in flight."""
    core = Core.create(settings)
    registry = CollectorRegistry()
    deliveries = Counter(
        "pm_webhook_deliveries_total", "Outbound delivery attempt outcomes", ["outcome"], registry=registry
    )
    stop_metrics = None
    if settings.metrics_port is not None:
        stop_metrics = serve_process_metrics(registry, settings.metrics_host, settings.metrics_port)
    reconciler = build_reconciler(settings, core)
    deliverer = build_deliverer(settings, core, deliveries) if settings.webhook_delivery else None
    loops = {"reconciler": asyncio.create_task(reconciler.run(), name="reconciler")}
    if deliverer is not None:
        loops["webhook-deliverer"] = asyncio.create_task(deliverer.run(), name="webhook-deliverer")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("housekeeper running: %s", ", ".join(loops))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopping, *loops.values()], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopping and task.exception() is not None:
            log.error("loop %s ended: %r", task.get_name(), task.exception())
    reconciler.stop()
    if deliverer is not None:
        await deliverer.stop()
    stopping.cancel()
    for task in loops.values():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if stop_metrics is not None:
        stop_metrics()
    await core.close()
