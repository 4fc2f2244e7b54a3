"""Deliveries seen from the API and the scheduler: their owner reads them with their attempts and replays one;
the sweep requests a job again for those left pending past their time. The attempts themselves: `attempts.py`."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, or_, select, update

from namaskah.db.service import Service
from namaskah.domain.webhooks.errors import (
    WebhookDeliveryInProgress,
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
    WebhookEndpointNotFound,
)
from namaskah.domain.webhooks.jobs import DeliverWebhook
from namaskah.domain.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from namaskah.domain.webhooks.service import require_webhooks_tier
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService

logger = get_logger(__name__)

_D, _E = WebhookDelivery, WebhookEndpoint
PENDING = DeliveryStatus.PENDING.value


class WebhookDeliveryRepository(SQLAlchemyAsyncRepository[WebhookDelivery]):
    model_type = WebhookDelivery


class WebhookDeliveryService(Service[WebhookDelivery, WebhookDeliveryRepository]):
    repository_type = WebhookDeliveryRepository

    async def get_for(self, user_id: uuid.UUID, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, WebhookEndpoint]:
        """The caller's delivery (through its endpoint); another user's is as missing as one that does not exist."""
        row = (
            await self._session.execute(
                select(_D, _E)
                .join(_E, _E.id == _D.endpoint_id)
                .where(_D.id == delivery_id, _E.user_id == user_id)
                .execution_options(populate_existing=True)
            )
        ).one_or_none()
        if row is None:
            raise WebhookDeliveryNotFound(f"No webhook delivery {delivery_id}")
        return row[0], row[1]

    async def list_for(
        self, user_id: uuid.UUID, endpoint_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[tuple[WebhookDelivery, str, list[WebhookAttempt]]], int]:
        """The deliveries of one of the caller's endpoints, newest first, each with its event's type and its
        attempts in order; another user's endpoint is 404."""
        owner = await self._session.scalar(select(_E.user_id).where(_E.id == endpoint_id))
        if owner != user_id:
            raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id}")
        rows = (
            (
                await self._session.execute(
                    select(_D, WebhookEvent.type)
                    .join(WebhookEvent, WebhookEvent.id == _D.event_id)
                    .where(_D.endpoint_id == endpoint_id)
                    .order_by(_D.id.desc())
                    .limit(limit)
                    .offset(offset)
                    .execution_options(populate_existing=True)
                )
            )
            .tuples()
            .all()
        )
        attempts: dict[uuid.UUID, list[WebhookAttempt]] = {delivery.id: [] for delivery, _ in rows}
        if attempts:
            found = await self._session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                .order_by(WebhookAttempt.number, WebhookAttempt.id)
            )
            for attempt in found:
                attempts[attempt.delivery_id].append(attempt)
        total = await self._session.scalar(select(func.count()).select_from(_D).where(_D.endpoint_id == endpoint_id))
        return [(delivery, kind, attempts[delivery.id]) for delivery, kind in rows], total or 0

    async def replay(self, user_id: uuid.UUID, tier: str, delivery_id: uuid.UUID, now: datetime) -> WebhookDelivery:
        """Send the delivery again (same body, same `webhook-id`) with a fresh retry schedule, whatever it ended as;
        409 while an attempt of it is in flight or its endpoint is disabled."""
        await require_webhooks_tier(self._session, tier)
        _, endpoint = await self.get_for(user_id, delivery_id)
        if not endpoint.enabled:
            raise WebhookEndpointDisabled("Enable the endpoint again before replaying its deliveries")
        moved = (
            await self._session.execute(
                update(_D)
                .where(_D.id == delivery_id, or_(_D.lease_until.is_(None), _D.lease_until <= now))
                .values(status=PENDING, failures=0, series_started_at=now, next_attempt_at=now, updated_at=now)
                .returning(_D.id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if moved is None:
            raise WebhookDeliveryInProgress("An attempt of this delivery is in flight; replay it once it ended")
        await OutboxService(session=self._session).request(DeliverWebhook(delivery_id=delivery_id))
        logger.info("webhook_delivery_replayed", delivery_id=str(delivery_id))
        return (await self.get_for(user_id, delivery_id))[0]

    async def request_overdue(self, now: datetime, *, late_by: timedelta, limit: int) -> int:
        """Request a job again for pending deliveries due `late_by` ago that nobody is sending (their message was
        lost, or its re-send failed); each is then not overdue again for another `late_by`."""
        ids = (
            await self._session.scalars(
                select(_D.id)
                .where(
                    _D.status == PENDING,
                    _D.next_attempt_at <= now - late_by,
                    or_(_D.lease_until.is_(None), _D.lease_until <= now),
                )
                .order_by(_D.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not ids:
            return 0
        await self._session.execute(
            update(_D).where(_D.id.in_(ids)).values(next_attempt_at=now).execution_options(synchronize_session=False)
        )
        outbox = OutboxService(session=self._session)
        for delivery_id in ids:
            await outbox.request(DeliverWebhook(delivery_id=delivery_id))
        logger.info("webhook_deliveries_swept", count=len(ids))
        return len(ids)
