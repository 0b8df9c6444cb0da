"""The API's composition root: routes, error handlers, the OpenAPI document, and the lifespan owning the clients."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from urllib.parse import urlsplit

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from api.auth import Authenticator
from api.errors import EXCEPTION_HANDLERS
from api.idempotency import IdempotencyStore
from api.metrics import Metrics, RequestContext
from api.previews import PreviewDeps, PreviewService
from api.redismux import RedisMux
from api.request_limits import HeaderLimits
from api.routes import BENCH_HANDLERS, BENCH_PATH, ROUTE_HANDLERS
from api.siwe import ContractWallets, SiwePolicy, SiweService
from api.state import ApiState, install_api_state
from api.status_reads import StatusReads
from api.streams import StreamHub, StreamLeases
from config.chain_check import configured_signer_address
from config.chains import DEFAULT_CHAIN
from config.clients import Core
from config.settings import Settings
from jobs.outbox import DeliveryStore, set_endpoint
from jobs.ratelimit import Limit, RateLimiter
from pipeline.build import build_personalizer, history_rpcs

log = logging.getLogger("personamint.api")


def create_app(settings: Settings) -> Litestar:
    metrics = Metrics()
    app = Litestar(
        route_handlers=[*ROUTE_HANDLERS, *(BENCH_HANDLERS if settings.bench_routes else ())],
        lifespan=[_lifespan(settings, metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # observability.logging owns the handlers (JSON, redacted)
        request_max_body_size=settings.max_body_bytes,
        openapi_config=_openapi_config(),
        debug=False,
    )
    # Wrapped outermost (see RequestContext); then the header limits, before any route or status read;
    # the bare benchmark route stays bare.
    limited = HeaderLimits(
        StatusReads(app.asgi_handler, app), max_bytes=settings.max_header_bytes, max_count=settings.max_header_count
    )
    app.asgi_handler = RequestContext(
        limited, metrics, log_requests=settings.log_requests, bypass=frozenset({BENCH_PATH})
    )
    return app


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
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
    )


def _lifespan(settings: Settings, metrics: Metrics) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as resources:
            install_api_state(app, await _open_state(settings, metrics, resources))
            # Everything loaded so far (Litestar, web3, LangChain, the schema) lives as long as the
            # process: moved out of the collector's view, a full collection no longer walks it
            # (~116k objects, a 60-80 ms stall for every request in flight; benchmarks.gc_pause).
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()  # back to the collector, for a process that goes on (tests, embedding)

    return lifespan


async def _open_state(settings: Settings, metrics: Metrics, resources: contextlib.AsyncExitStack) -> ApiState:
    """Open the clients (each closed by `resources`, last opened first) and build the services on them."""
    core = Core.create(settings, client_name="personamint-api")
    resources.push_async_callback(core.close)
    streams = StreamHub.from_url(settings.redis_url or "", core.redis, client_name="personamint-api-sse")
    streams.start()
    resources.push_async_callback(streams.aclose)
    stream_leases = StreamLeases(core.redis, limit=settings.sse_streams_per_credential)
    stream_leases.start()
    resources.push_async_callback(stream_leases.aclose)
    mux = RedisMux(settings.redis_url or "")  # the request hot path's auto-pipelined connection
    resources.push_async_callback(mux.aclose)
    # Each chain's reads (profiles; the default chain's also for /ready and EIP-1271 sign-ins).
    rpcs = history_rpcs(core.routes, retries=1, default_url="http://127.0.0.1:8545")
    for client in rpcs.values():
        resources.push_async_callback(client.aclose)
    rpc = rpcs[DEFAULT_CHAIN]
    personalizer = build_personalizer(settings, rpcs, core.redis)  # the worker's own recipe
    resources.push_async_callback(personalizer.aclose)

    public_url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    key_limit = Limit.per_minute(settings.key_rate_per_min, settings.key_burst)
    state = ApiState(
        core=core,
        metrics=metrics,
        public_url=public_url,
        key_limit=key_limit,
        recipient_limit=Limit.per_minute(settings.recipient_rate_per_min, settings.recipient_burst),
        authenticator=Authenticator(mux, key_limit),
        limiter=RateLimiter(core.redis),
        idempotency=IdempotencyStore(core.redis),
        deliveries=DeliveryStore(core.redis),
        rpc=rpc,
        siwe=SiweService(
            core.redis,
            _siwe_policy(settings, public_url),
            nonce_ttl_s=settings.siwe_nonce_ttl_s,
            session_ttl_s=settings.siwe_session_ttl_s,
            contract_wallets=ContractWallets(rpc),
            max_failures=settings.siwe_max_failures,
        ),
        signer_address=await configured_signer_address(settings),  # any kind: keystore, remote, raw key
        previews=PreviewService(
            PreviewDeps(
                redis=core.redis,
                personalizer=personalizer,
                collections=core.collections,
                render_queue=core.preview_queue,
                render_timeout_s=settings.preview_timeout_s,
                ttl_s=settings.preview_cache_ttl_s,
                concurrency=settings.preview_concurrency,
                limiter=RateLimiter(core.redis),
                scan_limit=Limit.per_minute(settings.profile_scans_per_min, settings.profile_scan_burst),
                tenant_in_flight=settings.tenant_previews_in_flight,
                chains={collection_id: route.chain.key for collection_id, route in core.routes.collections.items()},
            )
        ),
        streams=streams,
        stream_leases=stream_leases,
    )
    for name, source in settings.webhook_sources.items():
        if source.callback_url:
            await set_endpoint(
                core.redis,
                source.tenant,
                source.callback_url,
                source.secret.get_secret_value(),
                allow_loopback=settings.webhook_allow_loopback,
            )
            log.info("status webhooks for source %s go to its callback URL", name)
    return state


def _siwe_policy(settings: Settings, public_url: str) -> SiwePolicy:
    uri = (settings.siwe_uri or public_url).rstrip("/")
    domain = settings.siwe_domain or urlsplit(uri).netloc
    return SiwePolicy(domain=domain, uri=uri, chain_id=settings.chain_id, clock_skew_s=settings.siwe_clock_skew_s)
