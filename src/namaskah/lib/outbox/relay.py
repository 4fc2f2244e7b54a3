"""Moves committed outbox rows to the broker: right after commit (fast path) and by a periodic sweep (safety net)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import dramatiq
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.lib.logging import get_logger
from namaskah.lib.metrics import OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.lib.outbox.service import OutboxService, take_committed
from namaskah.lib.stamps import StampBook, drop_stale, take_stale

logger = get_logger(__name__)


def to_broker_message(row: OutboxMessage) -> dramatiq.Message[object]:
    # The request id rides in the options so the worker can bind it to the job's logs.
    return dramatiq.Message(
        queue_name=row.queue,
        actor_name=row.actor,
        args=(row.payload,),
        kwargs={},
        options={"request_id": row.request_id, "outbox_id": str(row.id)},
    )


class OutboxRelay:
    """Publishing is at-least-once: a row may be sent twice (fast path and sweep), so actors are idempotent."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], broker: dramatiq.Broker, stamps: StampBook | None = None
    ) -> None:
        self.sessions = sessions
        self.broker = broker
        self.stamps = stamps

    async def commit(self, session: AsyncSession) -> list[OutboxMessage]:
        """Commit (errors propagate to the caller), renew the stamps of what it changed, and return the jobs
        that transaction requested."""
        try:
            await session.commit()
        except BaseException:
            drop_stale(session)
            raise
        stale = take_stale(session)
        if stale and self.stamps is not None:
            await self.stamps.renew(stale)
        return take_committed(session)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work for jobs and commands: commit on success, then publish what it requested."""
        async with self.sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            messages = await self.commit(session)
        await self.publish(messages)

    async def publish(self, messages: Sequence[OutboxMessage], *, path: str = "fast") -> int:
        """Send committed rows and mark them published; a broker outage leaves them for the sweeper."""
        if not messages:
            return 0
        sent = await self._send(messages, path)
        async with self.sessions() as session:
            outbox, ids = OutboxService(session=session), [m.id for m in messages]
            await (outbox.mark_published(ids) if sent else outbox.count_failed_attempt(ids))
            await session.commit()
        return len(messages) if sent else 0

    async def _send(self, messages: Sequence[OutboxMessage], path: str) -> bool:
        """Hand the rows to the broker; False (logged and counted) when it is unreachable."""
        try:
            await asyncio.to_thread(self._send_all, messages)
        except Exception as exc:
            OUTBOX_PUBLISH_FAILURES.labels(path).inc()
            logger.warning("outbox_publish_failed", path=path, count=len(messages), error=type(exc).__name__)
            return False
        OUTBOX_PUBLISHED.labels(path).inc(len(messages))
        return True

    def _send_all(self, messages: Sequence[OutboxMessage]) -> None:
        # Dramatiq's brokers are synchronous: this runs in a thread, never on the event loop.
        for row in messages:
            if row.queue not in self.broker.get_declared_queues():
                self.broker.declare_queue(row.queue)
            self.broker.enqueue(to_broker_message(row))

    async def sweep(self, *, older_than: timedelta, limit: int) -> int:
        """Publish rows the fast path missed (crash or broker outage); concurrent sweepers skip each other's rows."""
        async with self.sessions() as session:
            rows = await OutboxService(session=session).claim_unpublished(older_than=older_than, limit=limit)
            if not rows or not await self._send(rows, "sweep"):
                return 0  # leaving the block rolls back and releases the row locks
            await OutboxService(session=session).mark_published([r.id for r in rows])
            await session.commit()
        logger.info("outbox_swept", count=len(rows))
        return len(rows)

    async def run_sweeper(self, *, interval: float, older_than: timedelta, limit: int) -> None:
        """Sweep forever; errors are logged and the loop goes on (the database may be restarting)."""
        while True:
            try:
                while await self.sweep(older_than=older_than, limit=limit) == limit:
                    pass
            except Exception:
                logger.exception("outbox_sweeper_error")
            await asyncio.sleep(interval)
