"""Engine and session factories built from settings, for the API, the worker and the CLI alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advanced_alchemy.config import AsyncSessionConfig
from advanced_alchemy.extensions.litestar import EngineConfig, SQLAlchemyAsyncConfig
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

    from namaskah.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """One pooled engine per process (and per event loop); SQLite gets WAL and a busy timeout for dev mode."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, echo=settings.db_echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        # Connect and statement timeouts keep an outage a fast 503 instead of a hung request.
        connect_args={"timeout": settings.ready_timeout, "server_settings": {"application_name": "namaskah"}},
        hide_parameters=not settings.is_dev,
        echo=settings.db_echo,
    )


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def create_alchemy_config(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession] | None = None
) -> SQLAlchemyAsyncConfig:
    """advanced-alchemy's plugin config; commits are ours (see `namaskah.db.session`), never its autocommit."""
    extra: dict[str, Any] = {}
    if session_factory is not None:
        extra["session_maker"] = session_factory
    return SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_config=AsyncSessionConfig(expire_on_commit=False),
        engine_config=EngineConfig(),
        session_dependency_key="alchemy_session",
        set_default_exception_handler=False,
        **extra,
    )
