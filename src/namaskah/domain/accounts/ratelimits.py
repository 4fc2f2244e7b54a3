"""Per-principal request limits on `/v1/*`: the caller's tier sets the limit, counted in Redis for all processes."""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from sqlalchemy import ColumnElement, case, select

from namaskah.domain.accounts.models import Role, Tier, User
from namaskah.domain.apikeys.models import ApiKey
from namaskah.domain.apikeys.service import split_key
from namaskah.domain.tiers.models import TierPlan
from namaskah.lib.errors import DomainError
from namaskah.lib.middleware import RESPONSE_HEADERS_KEY
from namaskah.lib.ratelimit import RateLimiter
from namaskah.lib.security.tokens import AccessTokenCodec, InvalidAccessToken, hash_token


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"


async def rate_limit_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Count the request against its principal: the user of a valid access token, else the client IP."""
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
    if key := connection.headers.get("x-api-key"):
        return await _api_key_principal(connection, key.strip())
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None, 0
    codec: AccessTokenCodec = connection.app.state.token_codec
    try:
        user_id = uuid.UUID(codec.decode(token.strip()).sub)
    except (InvalidAccessToken, ValueError):
        return None, 0  # the route itself answers 401 if it needs a user; count it as anonymous
    # The tier is read on every request so that a tier change applies at once.
    query = select(_limit_of_owner()).where(User.id == user_id, User.is_active.is_(True))
    async with connection.app.state.session_factory() as session:
        limit = await session.scalar(query)
    return (f"user:{user_id}", limit) if limit is not None else (None, 0)


async def _api_key_principal(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> tuple[str | None, int]:
    """A key is its own principal, limited by its owner's tier."""
    parts = split_key(key)
    if parts is None:
        return None, 0
    prefix, whole = parts
    query = (
        select(ApiKey.id, ApiKey.key_hash, _limit_of_owner().label("limit"))
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None), User.is_active.is_(True))
    )
    async with connection.app.state.session_factory() as session:
        row = (await session.execute(query)).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, hash_token(whole)):
        return None, 0
    return f"key:{row.id}", row.limit


def _limit_of_owner() -> ColumnElement[int]:
    """The user's tier limit, read in the same query as the user, so an operator's edit applies at once.
    Operators work through the admin routes whatever their own account's tier: they get the enterprise one."""
    own = select(TierPlan.rate_limit_per_minute).where(TierPlan.name == User.tier).scalar_subquery()
    top = select(TierPlan.rate_limit_per_minute).where(TierPlan.name == Tier.ENTERPRISE.value).scalar_subquery()
    return case((User.role == Role.OPERATOR.value, top), else_=own)
