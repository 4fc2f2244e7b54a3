"""The base of our services: advanced-alchemy's service with its session as the AsyncSession it is, and, for the
services that read settings, those settings. Each service joins the transaction of the session it is given."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.repository.typing import ModelT, SQLAlchemyAsyncRepositoryT
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from namaskah.db.session import plain_session
from namaskah.settings import Settings


class Service(SQLAlchemyAsyncRepositoryService[ModelT, SQLAlchemyAsyncRepositoryT]):
    @property
    def _session(self) -> AsyncSession:
        return plain_session(self.repository.session)


class ConfiguredService(Service[ModelT, SQLAlchemyAsyncRepositoryT]):
    def __init__(
        self, session: AsyncSession | async_scoped_session[AsyncSession], *, settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(session=session, **kwargs)
        self.settings = settings
