"""A request's transaction commits after the handler; a failed commit is never a 2xx and sends no job."""

from __future__ import annotations

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from litestar import Litestar, post
from litestar.di import NamedDependency
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from namaskah.app import create_app
from namaskah.db.engine import create_session_factory
from namaskah.domain.maintenance.service import PingService
from namaskah.lib.outbox.models import OutboxMessage
from tests.support.databases import make_settings


@post("/test/commit-fails")
async def commit_fails(db_session: NamedDependency[AsyncSession]) -> dict[str, str]:
    """Queues a job, then leaves a deferred constraint violated: only COMMIT can notice it."""
    await PingService(session=db_session).request("doomed-token-1")
    await db_session.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS deferred_child (id int PRIMARY KEY, parent int REFERENCES"
            " deferred_child(id) DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"
        )
    )
    await db_session.execute(text("INSERT INTO deferred_child VALUES (1, 999)"))
    return {"status": "looks fine until commit"}


@post("/test/handler-fails")
async def handler_fails(db_session: NamedDependency[AsyncSession]) -> None:
    await PingService(session=db_session).request("doomed-token-2")
    raise RuntimeError("after the job was requested")


@pytest.fixture
def session_factory(isolated_database: str) -> async_sessionmaker[AsyncSession]:
    """Real commits: a deferred constraint is only checked by a real COMMIT, not a savepoint release."""
    return create_session_factory(create_async_engine(isolated_database, poolclass=NullPool))


@pytest.fixture
def app(isolated_database: str, stub_broker: StubBroker) -> Litestar:
    app = create_app(make_settings(DATABASE_URL=isolated_database), broker=stub_broker)
    app.register(commit_fails)
    app.register(handler_fails)
    return app


def queued(broker: StubBroker) -> int:
    return sum(queue.qsize() for queue in broker.queues.values())


async def count_outbox(session: AsyncSession) -> int:
    return (await session.scalar(select(func.count()).select_from(OutboxMessage))) or 0


async def test_commit_failure_is_not_2xx_and_sends_nothing(
    client: AsyncClient, stub_broker: StubBroker, session_factory
) -> None:
    response = await client.post("/test/commit-fails")
    assert response.status_code >= 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "looks fine" not in response.text
    assert queued(stub_broker) == 0
    async with session_factory() as session:
        assert await count_outbox(session) == 0


async def test_handler_failure_rolls_back_the_job(
    client: AsyncClient, stub_broker: StubBroker, session_factory
) -> None:
    response = await client.post("/test/handler-fails")
    assert response.status_code == 500
    assert queued(stub_broker) == 0
    async with session_factory() as session:
        assert await count_outbox(session) == 0


async def test_job_is_published_after_commit_and_marked(
    client: AsyncClient, stub_broker: StubBroker, session_factory
) -> None:
    response = await client.post("/v1/dev/pings", json={"token": "after-commit-1"})
    assert response.status_code == 202, response.text
    assert queued(stub_broker) == 1
    message = stub_broker.queues["default"].get_nowait()
    assert b"maintenance.ping" in message
    assert b"after-commit-1" in message
    assert response.headers["x-request-id"].encode() in message
    async with session_factory() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None
        assert row.published_at is not None
        assert row.request_id == response.headers["x-request-id"]
