"""The sandbox's checkout: paying a sandbox transaction, and sending Paystack's signed charge.success for it to our
own webhook receiver over HTTP, from a job, as Paystack's servers would."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.db.core import rowcount
from namaskah.db.service import Service
from namaskah.domain.billing.errors import SandboxTransactionNotFound
from namaskah.domain.billing.events import SIGNATURE_HEADER, sign
from namaskah.domain.billing.jobs import DeliverSandboxEvent
from namaskah.domain.billing.models import SandboxTransaction
from namaskah.domain.billing.sandbox_api import verify_data
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService
from namaskah.settings import Settings

logger = get_logger(__name__)

UnitOfWork = Callable[[], AbstractAsyncContextManager[AsyncSession]]
WEBHOOK_PATH = "/v1/webhooks/paystack"
_S = SandboxTransaction


class SandboxDeliveryFailed(Exception):
    """Our receiver did not answer 200: the job is retried, as Paystack retries."""


class SandboxRepository(SQLAlchemyAsyncRepository[SandboxTransaction]):
    model_type = SandboxTransaction


class SandboxService(Service[SandboxTransaction, SandboxRepository]):
    repository_type = SandboxRepository

    async def find(self, reference: str) -> SandboxTransaction:
        query = select(_S).where(_S.reference == reference).execution_options(populate_existing=True)
        tx = (await self._session.scalars(query)).one_or_none()
        if tx is None:
            raise SandboxTransactionNotFound(f"The sandbox holds no transaction {reference!r}")
        return tx

    async def pay(self, reference: str) -> tuple[SandboxTransaction, bool]:
        """Mark it paid and request the webhook's delivery, once: paying again (a double click) changes nothing."""
        await self.find(reference)
        paid = await self._session.execute(
            update(_S)
            .where(_S.reference == reference, _S.status != "success")
            .values(status="success", paid_at=utcnow())
        )
        first = bool(rowcount(paid))
        if first:
            await OutboxService(session=self._session).request(DeliverSandboxEvent(reference=reference))
            logger.info("sandbox_paid", reference=reference)
        return await self.find(reference), first


def charge_success(tx: SandboxTransaction) -> dict[str, Any]:
    """The event Paystack sends after a successful charge."""
    return {"event": "charge.success", "data": verify_data(tx)}


async def deliver(
    transaction: UnitOfWork, settings: Settings, http: httpx.AsyncClient, job: DeliverSandboxEvent
) -> int:
    """POST the signed charge.success to PUBLIC_BASE_URL's receiver: the real route, signature check and all.
    Raises SandboxDeliveryFailed unless it answers 200 (the job's retries play Paystack's)."""
    async with transaction() as session:
        tx = await SandboxService(session=session).find(job.reference)
    body = msgspec.json.encode(charge_success(tx))
    url = settings.public_base_url.rstrip("/") + WEBHOOK_PATH
    headers = {SIGNATURE_HEADER: sign(body, settings.paystack_key), "Content-Type": "application/json"}
    try:
        response = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SandboxDeliveryFailed(f"{url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise SandboxDeliveryFailed(f"{url} answered {response.status_code}")
    logger.info("sandbox_webhook_delivered", reference=job.reference, url=url)
    return response.status_code
