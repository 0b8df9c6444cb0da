"""The Litestar app: routes, guards, error handlers and the lifespan that owns the clients."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from eth_account import Account
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from api.auth import Authenticator
from api.errors import EXCEPTION_HANDLERS
from api.idempotency import IdempotencyStore
from api.metrics import Metrics, RequestContext
from api.previews import PreviewDeps, PreviewService
from api.redismux import RedisMux
from api.routes.ipfs import ipfs_gateway
from api.routes.mints import create_mint, get_mint, mint_events
from api.routes.ops import BENCH_PATH, bench_bare, bench_bare_with_context, health, metrics_endpoint, ready
from api.routes.previews import create_preview, get_profile, preview_image
from api.routes.siwe import siwe_nonce, siwe_sign_in
from api.routes.webhooks import get_delivery, inbound_webhook, list_deliveries, retry_delivery
from api.siwe import ContractWallets, SiwePolicy, SiweService
from api.status_reads import StatusReads
from config.clients import Core
from config.settings import Settings
from jobs.outbox import DeliveryStore, set_endpoint
from jobs.ratelimit import Limit, RateLimiter
from personalization.rpc import JsonRpcClient
from pipeline.build import build_personalizer

log = logging.getLogger("personamint.api")


def _siwe_policy(settings: Settings, public_url: str) -> SiwePolicy:
    uri = (settings.siwe_uri or public_url).rstrip("/")
    domain = settings.siwe_domain or urlsplit(uri).netloc
    return SiwePolicy(domain=domain, uri=uri, chain_id=settings.chain_id, clock_skew_s=settings.siwe_clock_skew_s)


def create_app(settings: Settings) -> Litestar:
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        core = Core.create(settings)
        state = app.state
        state.core = core
        state.metrics = metrics
        state.public_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        state.key_limit = Limit.per_minute(settings.key_rate_per_min, settings.key_burst)
        state.recipient_limit = Limit.per_minute(settings.recipient_rate_per_min, settings.recipient_burst)
        mux = RedisMux(settings.redis_url or "")  # the request hot path's auto-pipelined connection
        state.authenticator = Authenticator(mux, state.key_limit)
        state.limiter = RateLimiter(core.redis)
        state.idempotency = IdempotencyStore(core.redis)
        state.deliveries = DeliveryStore(core.redis)
        rpc = JsonRpcClient(settings.rpc_url or "http://127.0.0.1:8545", retries=1)
        state.rpc = rpc
        state.siwe = SiweService(
            core.redis,
            _siwe_policy(settings, state.public_url),
            nonce_ttl_s=settings.siwe_nonce_ttl_s,
            session_ttl_s=settings.siwe_session_ttl_s,
            contract_wallets=ContractWallets(rpc),
        )
        state.signer_address = (
            Account.from_key(settings.signer_key.get_secret_value()).address if settings.signer_key else None
        )
        personalizer = build_personalizer(settings, rpc, core.redis)  # the worker's own recipe
        state.previews = PreviewService(
            PreviewDeps(
                redis=core.redis,
                personalizer=personalizer,
                collections=core.collections,
                render_queue=core.pipeline_queue,
                render_timeout_s=settings.preview_timeout_s,
                ttl_s=settings.preview_cache_ttl_s,
                concurrency=settings.preview_concurrency,
            )
        )
        for name, source in settings.webhook_sources.items():
            if source.callback_url:
                await set_endpoint(core.redis, source.tenant, source.callback_url, source.secret.get_secret_value())
                log.info("status webhooks for source %s go to its callback URL", name)
        # Everything loaded so far (Litestar, web3, LangChain, the schema) lives as long as the
        # process: moved out of the collector's view, a full collection no longer walks it
        # (~116k objects, a 60-80 ms stall for every request in flight; benchmarks.gc_pause).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # back to the collector, for a process that goes on (tests, embedding)
            await personalizer.aclose()
            await rpc.aclose()
            await mux.aclose()
            await core.close()

    handlers: list[Any] = [
        create_mint,
        get_mint,
        mint_events,
        create_preview,
        preview_image,
        get_profile,
        siwe_nonce,
        siwe_sign_in,
        inbound_webhook,
        list_deliveries,
        get_delivery,
        retry_delivery,
        ipfs_gateway,
        health,
        ready,
        metrics_endpoint,
    ]
    if settings.bench_routes:
        handlers += [bench_bare, bench_bare_with_context]
    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # api.logging owns the handlers (JSON, redacted)
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Persona Mint",
            version="0.2.0",
            path="/schema",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key (pm_…) or a SIWE session token (pms_…).",
                    )
                }
            ),
        ),
        debug=False,
    )
    # Wrapped outermost (see RequestContext); the bare benchmark route stays bare.
    app.asgi_handler = RequestContext(
        StatusReads(app.asgi_handler, app), metrics, log_requests=settings.log_requests, bypass=frozenset({BENCH_PATH})
    )
    return app
