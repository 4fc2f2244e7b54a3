"""The request's unit of work: one session, committed after the handler so a failed commit is never a 2xx."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from namaskah.lib.outbox.models import OutboxMessage
from namaskah.lib.outbox.relay import OutboxRelay

COMMITTED_JOBS_KEY = "namaskah.committed_jobs"
ServiceT = TypeVar("ServiceT", bound=SQLAlchemyAsyncRepositoryService[Any, Any])


def session_provider(config: SQLAlchemyAsyncConfig, relay: OutboxRelay) -> Provide:
    """`db_session`: commit runs in the dependency's cleanup, before the response leaves, so its errors
    go through the exception handlers (advanced-alchemy's autocommit would log them and still send the 2xx)."""

    async def provide_db_session(state: State, scope: Scope) -> AsyncGenerator[AsyncSession, None]:
        session = config.provide_session(state, scope)
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        committed = await relay.commit(session)
        if committed:
            scope["state"].setdefault(COMMITTED_JOBS_KEY, []).extend(committed)

    return Provide(provide_db_session)


def plain_session(session: AsyncSession | async_scoped_session[AsyncSession]) -> AsyncSession:
    """A repository's session as the AsyncSession it wraps (advanced-alchemy types it as possibly scoped)."""
    return session if isinstance(session, AsyncSession) else session()


def service_provider(service: type[ServiceT]) -> Provide:
    """A dependency building `service` on the request's session."""

    def provide(db_session: NamedDependency[AsyncSession]) -> ServiceT:
        return service(session=db_session)

    provide.__annotations__["return"] = service
    return Provide(provide, sync_to_thread=False)


def publish_after_response(relay: OutboxRelay) -> Callable[[Request[Any, Any, Any]], Any]:
    """After the response is sent, publish the jobs its transaction committed (the sweeper covers a crash)."""

    async def after_response(request: Request[Any, Any, Any]) -> None:
        messages: list[OutboxMessage] = request.scope["state"].pop(COMMITTED_JOBS_KEY, [])
        if messages:
            await relay.publish(messages)

    return after_response
