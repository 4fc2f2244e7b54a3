"""Creating, listing, revoking and resolving API keys, always through their owner."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import func, or_, select, update

from namaskah.db.base import utcnow
from namaskah.domain.accounts.caller_cache import user_stamp
from namaskah.domain.apikeys.models import ApiKey
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.audit.service import AuditService
from namaskah.lib.errors import DomainError
from namaskah.lib.logging import get_logger
from namaskah.lib.security.tokens import hash_token
from namaskah.lib.stamps import mark_stale

logger = get_logger(__name__)
KEY_PREFIX = "nsk_live_"
# `last_used_at` is a hint for the owner, not an audit trail: refresh it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyNotFound(DomainError):
    status_code = 404
    code = "api_key_not_found"
    title = "API key not found"


class ApiKeyRepository(SQLAlchemyAsyncRepository[ApiKey]):
    model_type = ApiKey


def split_key(key: str) -> tuple[str, str] | None:
    """`nsk_live_<lookup>_<secret>` into (prefix, whole key); None when it is not shaped like one of ours."""
    if not key.startswith(KEY_PREFIX):
        return None
    lookup, _, secret = key[len(KEY_PREFIX) :].partition("_")
    if len(lookup) != 12 or len(secret) < 32:
        return None
    return KEY_PREFIX + lookup, key


class ApiKeyService(SQLAlchemyAsyncRepositoryService[ApiKey, ApiKeyRepository]):
    repository_type = ApiKeyRepository

    async def issue(self, user_id: uuid.UUID, name: str, scopes: Sequence[Scope]) -> tuple[ApiKey, str]:
        """The new key and its secret; the secret exists only in this answer."""
        prefix = KEY_PREFIX + secrets.token_hex(6)
        key = f"{prefix}_{secrets.token_urlsafe(32)}"
        api_key = ApiKey(
            user_id=user_id,
            name=name,
            prefix=prefix,
            key_hash=hash_token(key),
            scopes=sorted({scope.value for scope in scopes}),
        )
        self.repository.session.add(api_key)
        await self.repository.session.flush()
        await AuditService(self.repository.session).record(
            "api_key.created",
            subject_type="api_key",
            subject_id=api_key.id,
            after={"user_id": str(user_id), "name": name, "scopes": api_key.scopes},
        )
        logger.info("api_key_created", api_key_id=str(api_key.id), user_id=str(user_id))
        return api_key, key

    async def list_for(self, user_id: uuid.UUID, *, limit: int, offset: int) -> tuple[Sequence[ApiKey], int]:
        active = (ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        session = self.repository.session
        rows = await session.scalars(
            select(ApiKey).where(*active).order_by(ApiKey.created_at.desc()).limit(limit).offset(offset)
        )
        total = await session.scalar(select(func.count()).select_from(ApiKey).where(*active))
        return rows.all(), total or 0

    async def revoke(self, user_id: uuid.UUID, api_key_id: uuid.UUID) -> None:
        """Another user's key answers exactly like a missing one."""
        revoked = await self.repository.session.execute(
            update(ApiKey)
            .where(ApiKey.id == api_key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if revoked.rowcount == 0:  # type: ignore[attr-defined]
            raise ApiKeyNotFound
        mark_stale(self.repository.session, user_stamp(user_id))  # a bulk UPDATE: no flush listener sees it
        await AuditService(self.repository.session).record(
            "api_key.revoked",
            subject_type="api_key",
            subject_id=api_key_id,
            before={"revoked": False},
            after={"revoked": True},
        )
        logger.info("api_key_revoked", api_key_id=str(api_key_id), user_id=str(user_id))

    async def touch(self, api_key_id: uuid.UUID) -> None:
        """Note that the key was used, unless another process did so in the last LAST_USED_RESOLUTION."""
        now = utcnow()
        await self.repository.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == api_key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_RESOLUTION),
            )
            .values(last_used_at=now)
        )
