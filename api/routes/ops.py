"""Operational routes: liveness, readiness, metrics, the bare benchmark route.

`/health` is public and says only "ok". `/ready` is public too (load balancers ask it) but its
public answer is one `ok` per check; what each check saw (chain id, signer address and balance,
queue depths, errors) is only shown to the ops credential (`Authorization: Bearer
<PERSONAMINT_OPS_TOKEN>`). `/metrics` needs that credential unless PERSONAMINT_METRICS_PUBLIC
says the port is private. See docs/security.md.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get

from api.errors import ApiError
from api.metrics import content_type
from api.routes.common import problem_responses
from api.schemas import (
    Health,
    Ready,
)
from api.state import api_state
from config.chain_check import read_signer_balance, rpc_balance, signer_balance_floor_wei
from config.settings import Settings

# One readiness check's report: `ok` and what it saw (JSON, under `checks` in /ready's answer).
CheckReport = dict[str, object]

BENCH_PATH = "/_bench/bare"


@get("/health", summary="Liveness")
async def health() -> Health:
    return Health(status="ok")


async def _check(name: str, probe: Callable[[], Awaitable[CheckReport]]) -> tuple[str, CheckReport]:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(probe(), 3.0)
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", reported by type
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return name, result


def is_ops_caller(request: Request[Any, Any, Any], settings: Settings) -> bool:
    """The request carries the ops credential (`Bearer <PERSONAMINT_OPS_TOKEN>`); never true when none is set."""
    if settings.ops_token is None:
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.ops_token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)


def _public(checks: dict[str, CheckReport]) -> dict[str, CheckReport]:
    """What anyone may see of the checks: ok or not, nothing they saw."""
    return {name: {"ok": bool(check["ok"])} for name, check in checks.items()}


@get("/ready", summary="Readiness: Redis, chain, signer balance, queue depth", responses=problem_responses(503))
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    state = api_state(request.app)
    core = state.core
    settings = core.settings
    detailed = is_ops_caller(request, settings)
    rpc = state.rpc
    signer_address = state.signer_address

    async def redis_probe() -> CheckReport:
        return {"ok": bool(await core.redis.ping())}

    async def chain_probe() -> CheckReport:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        ok = settings.chain_id is None or chain_id == settings.chain_id
        return {"ok": ok, "chain_id": chain_id}

    async def signer_probe() -> CheckReport:
        if signer_address is None:
            return {"ok": True, "skipped": "no signer configured"}
        reading = await read_signer_balance(
            rpc_balance(rpc.call), signer_address, threshold_wei=signer_balance_floor_wei(settings)
        )
        return {"ok": not reading.low, "address": reading.address, "wei": str(reading.balance_wei)}

    async def queue_probe() -> CheckReport:
        pipeline_depth = await core.pipeline_queue.count("queued")
        mint_depth = sum([await queue.count("queued") for queue in core.mint_queues.values()])
        state.metrics.queue_depth.labels("pipeline").set(pipeline_depth)
        state.metrics.queue_depth.labels("mint").set(mint_depth)
        return {"ok": pipeline_depth + mint_depth <= settings.max_queue_depth, "pipeline": pipeline_depth,
                "mint": mint_depth}  # fmt: skip

    checks = dict(
        await asyncio.gather(
            _check("redis", redis_probe),
            _check("chain", chain_probe),
            _check("signer", signer_probe),
            _check("queue", queue_probe),
        )
    )
    shown = checks if detailed else _public(checks)
    if all(check["ok"] for check in checks.values()):
        return Response(Ready(status="ready", checks=shown))
    return Response(
        {
            "type": "https://personamint.dev/problems/not_ready",
            "title": "not ready",
            "status": 503,
            "detail": "failing: " + ", ".join(name for name, check in checks.items() if not check["ok"]),
            "code": "not_ready",
            "checks": shown,
        },
        status_code=503,
        media_type="application/problem+json",
        headers={"Retry-After": "5"},
    )


@get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    state = api_state(request.app)
    settings = state.core.settings
    if not settings.metrics_public and not is_ops_caller(request, settings):
        raise ApiError(
            401,
            "ops_credential_required",
            "metrics need the ops credential (Authorization: Bearer <PERSONAMINT_OPS_TOKEN>)",
            headers={"WWW-Authenticate": 'Bearer realm="ops"'},
        )
    return Response(state.metrics.render(), media_type=content_type())


@get(BENCH_PATH, include_in_schema=False)
async def bench_bare() -> dict[str, str]:
    """A route that does nothing, outside RequestContext: what the framework alone costs (benchmarks)."""
    return {"status": "ok"}


@get(BENCH_PATH + "-with-context", include_in_schema=False)
async def bench_bare_with_context() -> dict[str, str]:
    """The same, through RequestContext (request id, metrics) like every API route (benchmarks)."""
    return {"status": "ok"}


HANDLERS = (health, ready, metrics_endpoint)
BENCH_HANDLERS = (bench_bare, bench_bare_with_context)  # mounted with `bench_routes` only
