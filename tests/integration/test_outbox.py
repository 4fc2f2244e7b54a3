"""The outbox relay: rows survive a broker outage, sweepers share the work, and actors tolerate duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.maintenance.models import Ping
from namaskah.domain.maintenance.schemas import PingRequested
from namaskah.domain.maintenance.service import PingService
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.lib.outbox.relay import OutboxRelay


class UnreachableBroker(StubBroker):
    def enqueue(self, message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
        raise dramatiq.errors.ConnectionClosed(OSError("connection refused"))


@pytest.fixture
async def sessions(isolated_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(isolated_database, pool_size=10)
    yield create_session_factory(engine)
    await engine.dispose()


async def request_pings(relay: OutboxRelay, tokens: list[str]) -> None:
    async with relay.transaction() as session:
        for token in tokens:
            await PingService(session=session).request(token)


async def unpublished(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
        return (await session.scalar(query)) or 0


def queued(broker: StubBroker) -> list[bytes]:
    return [broker.queues["default"].get_nowait() for _ in range(broker.queues["default"].qsize())]


async def test_broker_outage_leaves_rows_for_the_sweeper(sessions: async_sessionmaker[AsyncSession]) -> None:
    await request_pings(OutboxRelay(sessions, UnreachableBroker()), ["outage-aaaa1", "outage-aaaa2"])
    assert await unpublished(sessions) == 2
    async with sessions() as session:
        assert (await session.scalars(select(OutboxMessage.publish_attempts))).all() == [1, 1]
    # A sweep during the outage fails too, and leaves the rows (and their locks) as they were.
    assert await OutboxRelay(sessions, UnreachableBroker()).sweep(older_than=timedelta(0), limit=100) == 0
    assert await unpublished(sessions) == 2

    broker = StubBroker()
    relay = OutboxRelay(sessions, broker)
    assert await relay.sweep(older_than=timedelta(0), limit=100) == 2
    assert await unpublished(sessions) == 0
    assert len(queued(broker)) == 2
    assert await relay.sweep(older_than=timedelta(0), limit=100) == 0


async def test_sweeper_leaves_fresh_rows_to_the_fast_path(sessions: async_sessionmaker[AsyncSession]) -> None:
    await request_pings(OutboxRelay(sessions, UnreachableBroker()), ["fresh-aaaaa1"])
    relay = OutboxRelay(sessions, StubBroker())
    assert await relay.sweep(older_than=timedelta(minutes=5), limit=100) == 0
    assert await unpublished(sessions) == 1


async def test_concurrent_sweepers_publish_each_row_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    tokens = [f"sweep-{i:06d}" for i in range(60)]
    await request_pings(OutboxRelay(sessions, UnreachableBroker()), tokens)
    broker = StubBroker()
    relays = [OutboxRelay(sessions, broker) for _ in range(4)]
    counts = await asyncio.gather(*(r.sweep(older_than=timedelta(0), limit=20) for r in relays))
    while sum(counts) < len(tokens):
        more = await relays[0].sweep(older_than=timedelta(0), limit=20)
        assert more > 0
        counts.append(more)
    messages = queued(broker)
    assert len(messages) == len(tokens)
    assert sorted(dramatiq.Message.decode(m).args[0]["token"] for m in messages) == tokens


async def test_ping_actor_is_idempotent_under_duplicates(sessions: async_sessionmaker[AsyncSession]) -> None:
    job = PingRequested(token="duplicate-delivery-1")

    async def deliver() -> None:
        async with sessions() as session:
            await PingService(session=session).record(job)
            await session.commit()

    await asyncio.gather(*(deliver() for _ in range(8)))
    await deliver()
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ping)) == 1


async def test_only_jobs_of_committed_transactions_are_published(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Rows are written with Core statements, so the relay tracks which transaction holds each job: a rolled-back
    savepoint drops its jobs and keeps the rest, and a transaction that never commits sends none."""
    broker = StubBroker()
    relay = OutboxRelay(sessions, broker)
    async with relay.transaction() as session:
        await PingService(session=session).request("kept-aaaa1")
        savepoint = await session.begin_nested()
        await PingService(session=session).request("dropped-aaaa2")
        inner = await session.begin_nested()
        await PingService(session=session).request("dropped-aaaa3")
        await inner.commit()
        await savepoint.rollback()
        async with session.begin_nested():
            await PingService(session=session).request("kept-aaaa4")
    sent = [dramatiq.Message.decode(raw).args[0]["token"] for raw in queued(broker)]
    assert sent == ["kept-aaaa1", "kept-aaaa4"]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 2

    async with sessions() as session:
        await PingService(session=session).request("never-aaaa5")
        await session.rollback()
        await PingService(session=session).request("closed-aaaa6")
    async with sessions() as session:
        assert await relay.commit(session) == []
    assert queued(broker) == []
    assert await unpublished(sessions) == 0
