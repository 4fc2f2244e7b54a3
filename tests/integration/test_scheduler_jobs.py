"""What the periodic actors run around their sweeps: a backlog drained in one tick, a failure logged and counted
instead of raised (so no dead letter per tick), and how long the tick waited."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from namaskah.db.base import utcnow
from namaskah.domain.maintenance.jobs import ExpireVerifications, SweepOutbox
from namaskah.domain.maintenance.schemas import PingRequested
from namaskah.domain.maintenance.worker import drain_outbox, run_tick
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.lib.outbox.service import OutboxService


async def leave_unpublished(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    """Committed jobs whose fast path never ran (the process died right after the commit)."""
    async with sessions() as session:
        for n in range(count):
            await OutboxService(session=session).request(PingRequested(token=f"backlog-{n:04d}"))
        await session.commit()


async def test_one_outbox_tick_drains_a_backlog_larger_than_a_batch(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await leave_unpublished(session_factory, 5)
    broker = StubBroker()
    assert await drain_outbox(OutboxRelay(session_factory, broker), older_than=timedelta(0), limit=2) == 5
    assert broker.queues["default"].qsize() == 5
    async with session_factory() as session:
        waiting = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
        assert await session.scalar(waiting) == 0
    # Nothing left: the next tick costs one query and sends nothing.
    assert await drain_outbox(OutboxRelay(session_factory, broker), older_than=timedelta(0), limit=2) == 0
    assert broker.queues["default"].qsize() == 5


async def test_a_tick_logs_what_it_did_and_how_long_it_waited() -> None:
    job = SweepOutbox(sent_at=utcnow() - timedelta(seconds=2))

    async def sweep() -> int:
        return 3

    with capture_logs() as logs:
        await run_tick(job, sweep)
    assert logs[0]["event"] == "periodic_task_done"
    assert logs[0]["task"] == "maintenance.sweep_outbox"
    assert logs[0]["count"] == 3
    assert 2000 <= logs[0]["waited_ms"] < 10_000


async def test_a_failing_sweep_is_logged_and_counted_not_raised() -> None:
    failures = {"task": ExpireVerifications.actor_name}
    before = REGISTRY.get_sample_value("periodic_task_failures_total", failures) or 0.0

    async def broken() -> int:
        raise ConnectionRefusedError("database restarting")

    with capture_logs() as logs:
        await run_tick(ExpireVerifications(sent_at=utcnow()), broken)  # returns: Dramatiq sees a success
    assert [line["event"] for line in logs] == ["periodic_task_failed"]
    assert logs[0]["log_level"] == "error"
    assert logs[0]["exc_info"] is True
    assert REGISTRY.get_sample_value("periodic_task_failures_total", failures) == before + 1


async def test_a_tick_does_not_hide_a_time_limit() -> None:
    # The time limit interrupts with a BaseException: the actor fails (and is dead-lettered) rather than pass.
    async def hung() -> int:
        raise dramatiq.middleware.TimeLimitExceeded()

    with pytest.raises(dramatiq.middleware.TimeLimitExceeded):
        await run_tick(SweepOutbox(sent_at=utcnow()), hung)
