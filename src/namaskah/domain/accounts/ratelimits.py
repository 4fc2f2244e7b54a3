"""Per-principal request limits on `/v1/*`: the caller's tier sets the limit, counted in Redis for all processes."""

from __future__ import annotations

import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from sqlalchemy import select

from namaskah.domain.accounts.models import Tier, User
from namaskah.lib.errors import DomainError
from namaskah.lib.middleware import RESPONSE_HEADERS_KEY
from namaskah.lib.ratelimit import RateLimiter
from namaskah.lib.security.tokens import AccessTokenCodec, InvalidAccessToken

# Requests per minute. The tiers table that lets operators edit these comes with tier management.
TIER_RATE_LIMITS = {Tier.FREE: 10, Tier.PAYG: 30, Tier.PRO: 100, Tier.ENTERPRISE: 500}
LIMITED_PREFIX = "/v1/"


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"


async def rate_limit_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Count the request against its principal: the user of a valid access token, else the client IP."""
    if not connection.scope["path"].startswith(LIMITED_PREFIX):
        return
    state = connection.app.state
    key, limit = await _principal(connection)
    if key is None:
        key, limit = (
            f"ip:{connection.client.host if connection.client else 'unknown'}",
            state.settings.rate_limit_anonymous,
        )
    limiter: RateLimiter = state.rate_limiter
    decision = await limiter.hit(key, limit)
    # The outer middleware adds these to whatever answer goes out, the 429 included.
    connection.scope["state"][RESPONSE_HEADERS_KEY] = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            f"Limit of {limit} requests per minute reached; retry in {decision.reset} s",
            headers={"Retry-After": str(decision.reset)},
        )


async def _principal(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str | None, int]:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None, 0
    codec: AccessTokenCodec = connection.app.state.token_codec
    try:
        user_id = uuid.UUID(codec.decode(token.strip()).sub)
    except (InvalidAccessToken, ValueError):
        return None, 0  # the route itself answers 401 if it needs a user; count it as anonymous
    # The tier is read on every request so that a tier change applies at once.
    async with connection.app.state.session_factory() as session:
        tier = await session.scalar(select(User.tier).where(User.id == user_id, User.is_active.is_(True)))
    if tier is None:
        return None, 0
    return f"user:{user_id}", TIER_RATE_LIMITS.get(Tier(tier), TIER_RATE_LIMITS[Tier.FREE])
