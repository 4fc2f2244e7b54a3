"""Shared fixtures: a migrated PostgreSQL template, per-test isolation, Redis namespaces, and app clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis
from dramatiq.brokers.stub import StubBroker
from litestar import Litestar
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from namaskah.app import create_app
from tests.support.databases import (
    REDIS_URL,
    SHARED_DB,
    TEMPLATE_DB,
    create_database,
    database_url,
    drop_database,
    make_settings,
    run_cli,
    settings_env,
)


@pytest.fixture(scope="session")
async def template_database() -> AsyncIterator[str]:
    """Migrated once per run with the real `namaskah database upgrade`; test databases are copies of it."""
    await create_database(TEMPLATE_DB)
    result = run_cli("database", "upgrade", env=settings_env(DATABASE_URL=database_url(TEMPLATE_DB)))
    assert result.returncode == 0, result.stderr
    await create_database(SHARED_DB, template=TEMPLATE_DB)
    yield TEMPLATE_DB
    await drop_database(SHARED_DB)
    await drop_database(TEMPLATE_DB)


@pytest.fixture(scope="session")
async def engine(template_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url(SHARED_DB))
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection in a transaction that is rolled back after the test: nothing a test writes survives it."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            if transaction.is_active:
                await transaction.rollback()


@pytest.fixture
def session_factory(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # The code under test commits; on this connection a commit only releases a savepoint.
    return async_sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
async def isolated_database(template_database: str) -> AsyncIterator[str]:
    """A database of its own (a copy of the migrated template) for tests whose commits must be real."""
    name = f"namaskah_t_{uuid.uuid4().hex[:12]}"
    await create_database(name, template=template_database)
    yield database_url(name)
    await drop_database(name)


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A Dramatiq namespace of its own in the test Redis database, deleted afterwards."""
    namespace = f"namaskah-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def stub_broker() -> StubBroker:
    return StubBroker()


@pytest.fixture
def app(session_factory: async_sessionmaker[AsyncSession], stub_broker: StubBroker) -> Litestar:
    return create_app(make_settings(), session_factory=session_factory, broker=stub_broker)


@asynccontextmanager
async def serve_in_loop(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app on this event loop (Litestar's test client runs it on another thread's loop, which asyncpg
    connections bound to this loop cannot cross)."""
    started, stopping = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        # One task enters and exits the lifespan (anyio cancel scopes must not change task).
        async with app.lifespan():
            started.set()
            await stopping.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await asyncio.wait([lifespan, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():
        lifespan.result()  # start-up failed: raise its error
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        stopping.set()
        await lifespan


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_loop(app) as test_client:
        yield test_client
