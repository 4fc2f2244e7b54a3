"""Requesting jobs inside a transaction, and finding the ones still waiting to be published."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.lib.logging import bound_context
from namaskah.lib.outbox.jobs import Job
from namaskah.lib.outbox.models import OutboxMessage

PENDING_KEY = "namaskah.outbox.pending"


class OutboxRepository(SQLAlchemyAsyncRepository[OutboxMessage]):
    model_type = OutboxMessage


class OutboxService(SQLAlchemyAsyncRepositoryService[OutboxMessage, OutboxRepository]):
    repository_type = OutboxRepository

    async def request(self, job: Job) -> OutboxMessage:
        """Add the job to the caller's transaction; it reaches the broker only if that transaction commits."""
        message = OutboxMessage(
            actor=job.actor_name,
            queue=job.queue_name,
            payload=job.to_payload(),
            request_id=bound_context().get("request_id"),
        )
        session = self.repository.session
        session.add(message)
        session.info.setdefault(PENDING_KEY, []).append(message)
        return message

    async def claim_unpublished(self, *, older_than: timedelta, limit: int) -> Sequence[OutboxMessage]:
        """Rows nobody published yet, locked so that concurrent sweepers take different ones."""
        cutoff = utcnow() - older_than
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.published_at.is_(None), OutboxMessage.created_at <= cutoff)
            .order_by(OutboxMessage.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.repository.session.scalars(query)).all()

    async def mark_published(self, ids: Sequence[uuid.UUID], at: datetime | None = None) -> None:
        await self.repository.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.published_at.is_(None))
            .values(published_at=at or utcnow())
        )

    async def count_failed_attempt(self, ids: Sequence[uuid.UUID]) -> None:
        await self.repository.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(publish_attempts=OutboxMessage.publish_attempts + 1)
        )


def take_committed(session: AsyncSession) -> list[OutboxMessage]:
    """The jobs this session requested that are now committed; rolled-back ones are dropped, never sent."""
    pending: list[OutboxMessage] = session.info.pop(PENDING_KEY, [])
    # A rolled-back insert leaves the object transient; only persistent rows were really committed.
    return [m for m in pending if inspect(m).persistent]
