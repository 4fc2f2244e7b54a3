"""Who sent a request, looked up once per request (one query: user, key and tier limit) and shared by the
rate-limit guard and the `principal` dependency."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from sqlalchemy import ColumnElement, case, select

from namaskah.domain.accounts.errors import InvalidApiKey, NotAuthenticated
from namaskah.domain.accounts.models import Role, Tier, User
from namaskah.domain.apikeys.models import ApiKey
from namaskah.domain.apikeys.service import split_key
from namaskah.domain.tiers.models import TierPlan
from namaskah.lib.errors import DomainError
from namaskah.lib.security.tokens import AccessTokenCodec, InvalidAccessToken, hash_token

CALLER_KEY = "namaskah.caller"
Connection = ASGIConnection[Any, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Caller:
    """The user (and key) as loaded by the lookup session: detached, to be merged into the request's session."""

    user: User
    limit: int
    api_key: ApiKey | None = None

    @property
    def rate_key(self) -> str:
        return f"key:{self.api_key.id}" if self.api_key is not None else f"user:{self.user.id}"


async def identify(connection: Connection) -> Caller | None:
    """The caller of a valid credential, else None (anonymous or refused); looked up at most once."""
    state = connection.scope["state"]
    if CALLER_KEY not in state:
        state[CALLER_KEY] = await _lookup(connection)
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


async def _lookup(connection: Connection) -> Caller | None:
    if key := connection.headers.get("x-api-key"):
        return await _by_api_key(connection, key.strip())
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        user_id = _subject(connection, token.strip())
    except (InvalidAccessToken, NotAuthenticated):
        return None
    # The tier is read with the user on every request so that a tier change applies at once.
    query = select(User, _limit_of(User)).where(User.id == user_id, User.is_active.is_(True))
    async with connection.app.state.session_factory() as session:
        row = (await session.execute(query)).one_or_none()
    return Caller(user=row[0], limit=row[1]) if row is not None else None


async def _by_api_key(connection: Connection, key: str) -> Caller | None:
    parts = split_key(key)
    if parts is None:
        return None
    prefix, whole = parts
    query = (
        select(ApiKey, User, _limit_of(User))
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None), User.is_active.is_(True))
    )
    # No cache: a revoked key stops working at the next request.
    async with connection.app.state.session_factory() as session:
        row = (await session.execute(query)).one_or_none()
    if row is None or not hmac.compare_digest(row[0].key_hash, hash_token(whole)):
        return None
    return Caller(user=row[1], limit=row[2], api_key=row[0])


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
