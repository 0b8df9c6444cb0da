"""Sign-In with Ethereum routes: a nonce, then a session for a signed message."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import JSONBody

from api.client_address import client_address, limit_bucket
from api.errors import rate_limited
from api.routes.common import IdempotencyKeyHeader, json_body_only, problem_responses
from api.schemas import (
    Nonce,
    SessionView,
    SiweRequest,
)
from api.state import api_state
from api.validation import parse_idempotency_key
from jobs.ids import wallet_tenant
from jobs.ratelimit import Limit


@get(
    "/v1/auth/nonce",
    summary="A single-use nonce for a Sign-In with Ethereum message",
    responses=problem_responses(429),
)
async def siwe_nonce(request: Request[Any, Any, Any]) -> Nonce:
    """Rate limited per client address (GCRA): each nonce is a Redis key until it expires."""
    state = api_state(request.app)
    settings = state.core.settings
    address = client_address(request, settings.trusted_proxies)
    limit = Limit.per_minute(settings.siwe_nonce_rate_per_min, settings.siwe_nonce_burst)
    decision = await state.limiter.hit((f"siwe-nonce:{limit_bucket(address)}", limit))
    if not decision.allowed:
        raise rate_limited("rate_limited", "Too many sign-in nonces for this client address; slow down.", decision)
    siwe = state.siwe
    nonce, expires_at = await siwe.new_nonce()
    return Nonce(
        nonce=nonce,
        expires_at=expires_at,
        domain=siwe.policy.domain,
        uri=siwe.policy.uri,
        chain_id=siwe.policy.chain_id,
    )


@post(
    "/v1/auth/siwe",
    status_code=201,
    summary="Exchange a signed EIP-4361 message for a session token",
    description=(
        "The nonce makes this request single-use: an Idempotency-Key is accepted but a replay is "
        "refused (replaying a sign-in would hand out a second session)."
    ),
    before_request=json_body_only,
    responses=problem_responses(400, 401, 413, 415, 429, 503),
)
async def siwe_sign_in(
    request: Request[Any, Any, Any], data: JSONBody[SiweRequest], idempotency_key: IdempotencyKeyHeader = None
) -> SessionView:
    parse_idempotency_key(idempotency_key)
    session = await api_state(request.app).siwe.sign_in(data.message, data.signature)
    return SessionView(
        token=session.token,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a password
        address=session.address,
        expires_at=session.expires_at,
        tenant=wallet_tenant(session.address),
    )


HANDLERS = (siwe_nonce, siwe_sign_in)
