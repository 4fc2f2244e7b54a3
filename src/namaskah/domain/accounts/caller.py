"""Who sent a request and whether they are within their rate limit: one Redis round trip per request, and a
database lookup only when this process has no fresh copy of the caller (see caller_cache)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from sqlalchemy import ColumnElement, Select, case, select

from namaskah.domain.accounts.caller_cache import CallerCache, Identity, stamps_of
from namaskah.domain.accounts.errors import InvalidApiKey, NotAuthenticated
from namaskah.domain.accounts.models import Role, Tier, User
from namaskah.domain.apikeys.models import ApiKey
from namaskah.domain.apikeys.service import split_key
from namaskah.domain.tiers.models import TierPlan
from namaskah.lib.errors import DomainError
from namaskah.lib.middleware import client_ip
from namaskah.lib.ratelimit import Decision, RateLimiter, Tally
from namaskah.lib.security.tokens import AccessTokenCodec, InvalidAccessToken, hash_token
from namaskah.lib.stamps import StampBook

CALLER_KEY = "namaskah.caller"
Connection = ASGIConnection[Any, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Caller:
    """The user (and key) as loaded by a lookup session: detached, shared by requests, merged into each one's
    session; never modified."""

    user: User
    limit: int
    api_key: ApiKey | None = None

    @property
    def identity(self) -> Identity:
        rate_key = f"key:{self.api_key.id}" if self.api_key is not None else f"user:{self.user.id}"
        return Identity(rate_key=rate_key, user_id=self.user.id)


@dataclass(frozen=True, slots=True)
class Credential:
    """A presented credential, parsed but not yet checked against the database."""

    cache_key: str
    api_key: str | None = None  # the whole key
    user_id: uuid.UUID | None = None  # the subject of a valid access token

    @property
    def identity(self) -> Identity | None:
        """Known without a lookup for an access token; an API key's owner takes one lookup to learn."""
        return Identity(f"user:{self.user_id}", self.user_id) if self.user_id is not None else None


async def admit(connection: Connection, *, cost: int = 1) -> Decision:
    """Identify the caller (kept in the scope for `identify`) and count the request against their limit: the
    principal's tier limit, or the client IP's anonymous one."""
    state = connection.app.state
    limiter: RateLimiter = state.rate_limiter
    credential = _credential(connection)
    caller, tally = None, None
    if credential is not None:
        caller, tally = await _resolve(connection, credential, limiter, cost)
    if tally is None and caller is None:
        # Anonymous, or a credential that matches nothing: counted against the client IP.
        tally = await limiter.count(f"ip:{client_ip(connection)}", cost=cost)
    connection.scope["state"][CALLER_KEY] = caller
    return limiter.decide(tally, caller.limit if caller is not None else state.settings.rate_limit_anonymous)


async def identify(connection: Connection) -> Caller | None:
    """The caller of a valid credential, else None (anonymous or refused); resolved at most once per request."""
    state = connection.scope["state"]
    if CALLER_KEY not in state:
        await admit(connection, cost=0)  # a route outside the rate-limited router
    caller: Caller | None = state[CALLER_KEY]
    return caller


def refusal(connection: Connection) -> DomainError:
    """Why a request without a usable credential is refused; an invalid access token raises its own reason."""
    if connection.headers.get("x-api-key"):
        return InvalidApiKey()
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return NotAuthenticated("Send Authorization: Bearer <access token> or X-API-Key: <key>")
    _subject(connection, token.strip())
    return NotAuthenticated("The account no longer exists or is disabled")


async def _resolve(
    connection: Connection, credential: Credential, limiter: RateLimiter, cost: int
) -> tuple[Caller | None, Tally | None]:
    state = connection.app.state
    cache: CallerCache = state.caller_cache
    stamps: StampBook = state.stamps
    identity = credential.identity or cache.identity(credential.cache_key)
    if identity is None:
        # First sight of this key in this process: learn its owner; the copy is cached from the next request
        # on, under stamps read before its load.
        caller = await _load(connection, credential)
        if caller is None:
            return None, None
        cache.remember(credential.cache_key, caller.identity)
        return caller, await limiter.count(caller.identity.rate_key, cost=cost)
    stamp_keys = [stamps.key(name) for name in stamps_of(identity.user_id)] if stamps.enabled else []
    tally = await limiter.count(identity.rate_key, cost=cost, stamp_keys=stamp_keys)
    # Without stamps (Redis unreachable, or dev mode without Redis) nothing cached may be trusted.
    stamped = tally.stamps if tally is not None else None
    caller = cache.fresh(credential.cache_key, stamped) if stamped else None
    if caller is None:
        caller = await _load(connection, credential)
        if caller is not None and stamped:
            cache.store(credential.cache_key, caller, stamped)
    return caller, tally


def _credential(connection: Connection) -> Credential | None:
    if key := connection.headers.get("x-api-key"):
        key = key.strip()
        return Credential(cache_key=f"key:{hash_token(key)}", api_key=key) if split_key(key) else None
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        user_id = _subject(connection, token.strip())
    except (InvalidAccessToken, NotAuthenticated):
        return None
    return Credential(cache_key=f"user:{user_id}", user_id=user_id)


async def _load(connection: Connection, credential: Credential) -> Caller | None:
    query: Select[Any]
    if credential.api_key is not None:
        prefix, whole = split_key(credential.api_key) or ("", "")
        query = (
            select(User, _limit_of(User), ApiKey)
            .join(ApiKey, User.id == ApiKey.user_id)
            .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        )
    else:
        query = select(User, _limit_of(User)).where(User.id == credential.user_id)
    async with connection.app.state.session_factory() as session:
        row = (await session.execute(query.where(User.is_active.is_(True)))).one_or_none()
    if row is None:
        return None
    if credential.api_key is None:
        return Caller(user=row[0], limit=row[1])
    if not hmac.compare_digest(row[2].key_hash, hash_token(whole)):
        return None
    return Caller(user=row[0], limit=row[1], api_key=row[2])


def _subject(connection: Connection, token: str) -> uuid.UUID:
    codec: AccessTokenCodec = connection.app.state.token_codec
    try:
        return uuid.UUID(codec.decode(token).sub)
    except ValueError:
        raise NotAuthenticated("Malformed token subject") from None


def _limit_of(user: type[User]) -> ColumnElement[int]:
    """The user's tier limit. Operators work through the admin routes whatever their own account's tier:
    they get the enterprise one."""
    own = select(TierPlan.rate_limit_per_minute).where(TierPlan.name == user.tier).scalar_subquery()
    top = select(TierPlan.rate_limit_per_minute).where(TierPlan.name == Tier.ENTERPRISE.value).scalar_subquery()
    return case((user.role == Role.OPERATOR.value, top), else_=own)
