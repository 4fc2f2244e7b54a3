"""Requesting jobs inside a transaction, and finding the ones still waiting to be published."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import Table, event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.orm import Session, SessionTransaction
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import column_values
from namaskah.lib.logging import bound_context
from namaskah.lib.outbox.jobs import Job
from namaskah.lib.outbox.models import OutboxMessage

PENDING_KEY = "namaskah.outbox.pending"
COMMITTED_KEY = "namaskah.outbox.committed"
_TABLE: Table = OutboxMessage.__table__  # type: ignore[assignment]
# Built once: a Core INSERT skips the unit of work, and every purchase requests a job.
_INSERT = insert(_TABLE)


class OutboxRepository(SQLAlchemyAsyncRepository[OutboxMessage]):
    model_type = OutboxMessage


class OutboxService(SQLAlchemyAsyncRepositoryService[OutboxMessage, OutboxRepository]):
    repository_type = OutboxRepository

    async def request(self, job: Job) -> OutboxMessage:
        """Add the job to the caller's transaction; it reaches the broker only if that transaction commits."""
        message = OutboxMessage(
            id=uuid7(),
            actor=job.actor_name,
            queue=job.queue_name,
            payload=job.to_payload(),
            request_id=bound_context().get("request_id"),
            created_at=utcnow(),
            published_at=None,
            publish_attempts=0,
        )
        scoped = self.repository.session
        session = (scoped() if isinstance(scoped, async_scoped_session) else scoped).sync_session
        await self.repository.session.execute(_INSERT, column_values(message))
        # Remember the innermost transaction holding the row: if it rolls back, so does the job.
        holder = session.get_nested_transaction() or session.get_transaction()
        session.info.setdefault(PENDING_KEY, []).append((message, holder))
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
    committed: list[OutboxMessage] = session.sync_session.info.pop(COMMITTED_KEY, [])
    return committed


def _inside(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A savepoint (or the whole transaction) rolled back: the jobs requested inside it will never be sent."""
    if pending := session.info.get(PENDING_KEY):
        session.info[PENDING_KEY] = [(m, t) for m, t in pending if not _inside(t, previous_transaction)]


@event.listens_for(Session, "after_commit")
def _keep_committed(session: Session) -> None:
    # Fired for released savepoints too; only the outermost commit writes anything.
    if session.get_nested_transaction() is None:
        session.info.setdefault(COMMITTED_KEY, []).extend(m for m, _ in session.info.pop(PENDING_KEY, []))


@event.listens_for(Session, "after_transaction_end")
def _drop_unfinished(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit (closed or rolled back): nothing of it was written.
    if transaction.parent is None:
        session.info.pop(PENDING_KEY, None)
