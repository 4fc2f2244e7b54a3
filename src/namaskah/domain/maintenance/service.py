"""Requesting a ping job and recording its arrival exactly once."""

from __future__ import annotations

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy.exc import IntegrityError

from namaskah.domain.maintenance.models import Ping
from namaskah.domain.maintenance.schemas import PingRequested
from namaskah.lib.logging import bound_context, get_logger
from namaskah.lib.outbox.service import OutboxService

logger = get_logger(__name__)


class PingRepository(SQLAlchemyAsyncRepository[Ping]):
    model_type = Ping


class PingService(SQLAlchemyAsyncRepositoryService[Ping, PingRepository]):
    repository_type = PingRepository

    async def request(self, token: str) -> None:
        """Ask a worker to record the ping once this transaction commits."""
        await OutboxService(session=self.repository.session).request(PingRequested(token=token))

    async def record(self, job: PingRequested) -> Ping:
        """Idempotent: a redelivered message finds the first row and changes nothing."""
        if existing := await self.repository.get_one_or_none(token=job.token):
            logger.info("ping_duplicate", ping=job.token)
            return existing
        ping = Ping(token=job.token, request_id=bound_context().get("request_id"))
        session = self.repository.session
        try:
            async with session.begin_nested():
                session.add(ping)
        except IntegrityError:
            # Another worker recorded it between our read and our insert.
            return await self.repository.get_one(token=job.token)
        logger.info("ping_recorded", ping=job.token)
        return ping

    async def find(self, token: str) -> Ping | None:
        return await self.repository.get_one_or_none(token=token)
