"""Recording audit entries in the caller's transaction, reading them back, and verifying the chain."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.session import plain_session
from namaskah.domain.audit.chain import ChainReport, stage, verify_chain
from namaskah.domain.audit.models import AuditLog
from namaskah.lib.logging import SCOPE_KEY, bound_context, redact_secrets

USER_AGENT_MAX = 255
IP_MAX = 64


class ActorType(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    CLI = "cli"
    ANONYMOUS = "anonymous"  # a request without credentials (e.g. a failed login)
    SYSTEM = "system"  # a job or anything else outside a request


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made the change. For an API key, `user_id` is the key's owner."""

    type: ActorType
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Actor:
        return cls(ActorType.USER, user_id)

    @classmethod
    def current(cls, *, fallback_user_id: uuid.UUID | None = None) -> Actor:
        """The principal the request resolved (accounts/deps.py binds it to the log context), else
        `fallback_user_id` (a login proving who it is), else anonymous in a request and system outside one."""
        context = bound_context()
        user_id, api_key_id = context.get("user_id"), context.get("api_key_id")
        if user_id and api_key_id:
            return cls(ActorType.API_KEY, uuid.UUID(user_id), uuid.UUID(api_key_id))
        if user_id:
            return cls.user(uuid.UUID(user_id))
        if fallback_user_id is not None:
            return cls.user(fallback_user_id)
        return cls(ActorType.ANONYMOUS if SCOPE_KEY in context else ActorType.SYSTEM)


CLI_ACTOR = Actor(ActorType.CLI)


class AuditService:
    """Entries join the caller's transaction: they are written if and only if it commits."""

    def __init__(self, session: AsyncSession | async_scoped_session[AsyncSession]) -> None:
        self.session = plain_session(session)

    async def record(
        self,
        action: str,
        *,
        subject_type: str,
        subject_id: uuid.UUID | str | None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> AuditLog:
        """Stage an entry such as `auth.login.succeeded`. `before`/`after` hold the changed values; keys that
        name secrets and secret-shaped text are redacted like in the logs, but pass no secrets in the first place.

        The entry gets its sequence and hash when the transaction commits (see chain.py)."""
        context = bound_context()
        actor = actor or Actor.current()
        scope = context.get(SCOPE_KEY)
        entry = AuditLog(
            id=uuid7(),
            occurred_at=utcnow(),
            actor_type=actor.type.value,
            actor_user_id=actor.user_id,
            actor_api_key_id=actor.api_key_id,
            action=action,
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id),
            ip=_client_ip(scope),
            user_agent=_user_agent(scope),
            request_id=context.get("request_id"),
            before=_redacted(before),
            after=_redacted(after),
        )
        stage(self.session, entry)
        return entry

    async def list_entries(
        self,
        *,
        action: str | None = None,
        actor_user_id: uuid.UUID | None = None,
        subject_type: str | None = None,
        subject_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[AuditLog], int]:
        """Newest first; `since` is inclusive, `until` exclusive."""
        filters: list[ColumnElement[bool]] = []
        if action is not None:
            filters.append(AuditLog.action == action)
        if actor_user_id is not None:
            filters.append(AuditLog.actor_user_id == actor_user_id)
        if subject_type is not None:
            filters.append(AuditLog.subject_type == subject_type)
        if subject_id is not None:
            filters.append(AuditLog.subject_id == subject_id)
        if since is not None:
            filters.append(AuditLog.occurred_at >= _as_utc(since))
        if until is not None:
            filters.append(AuditLog.occurred_at < _as_utc(until))
        rows = await self.session.scalars(
            select(AuditLog).where(*filters).order_by(AuditLog.sequence.desc()).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(AuditLog).where(*filters))
        return rows.all(), total or 0

    async def verify(self) -> ChainReport:
        return await verify_chain(self.session)


def _redacted(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    # The logs' own redaction, so the audit log and the log lines agree on what a secret is.
    return dict(redact_secrets(None, "audit", msgspec.to_builtins(dict(values))))


def _as_utc(moment: datetime) -> datetime:
    """A time without an offset is taken as UTC (the API speaks UTC only)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _client_ip(scope: Mapping[str, Any] | None) -> str | None:
    client = scope.get("client") if scope else None
    return str(client[0])[:IP_MAX] if client else None


def _user_agent(scope: Mapping[str, Any] | None) -> str | None:
    for name, value in scope.get("headers", ()) if scope else ():
        if name == b"user-agent":
            return str(value.decode("latin-1")[:USER_AGENT_MAX])
    return None
