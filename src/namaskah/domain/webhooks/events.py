"""Recording webhook events inside the transaction of the change they report: the event, one delivery per
subscribed endpoint and one delivery job through the outbox are committed, or rolled back, with that change.

The services call these hooks (one call per change); nothing is written for a user without a subscribed endpoint
on a tier with webhooks, so the hooks cost one indexed read on paths where nobody listens.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import column_values, rowcount
from namaskah.db.upsert import insert_or_skip_into
from namaskah.domain.accounts.models import User
from namaskah.domain.rentals.models import Rental, RentalStatus
from namaskah.domain.rentals.schemas import RentalRead
from namaskah.domain.tiers.models import TierPlan
from namaskah.domain.verifications.models import Verification, VerificationMessage
from namaskah.domain.verifications.schemas import VerificationRead
from namaskah.domain.wallet.schemas import WalletTransaction
from namaskah.domain.webhooks.jobs import DeliverWebhook
from namaskah.domain.webhooks.models import DeliveryStatus, EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent
from namaskah.domain.webhooks.schemas import RentalMessageData, WebhookBody
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService

if TYPE_CHECKING:
    from namaskah.domain.wallet.service import Booking

logger = get_logger(__name__)

_EVENTS: Table = WebhookEvent.__table__  # type: ignore[assignment]
_DELIVERIES: Table = WebhookDelivery.__table__  # type: ignore[assignment]
_INSERT_DELIVERIES = insert(_DELIVERIES)
# `rental.expiring` is sent this long before a rental that will not renew itself ends.
EXPIRING_NOTICE = timedelta(hours=1)
VERIFICATION_EVENTS = {
    "completed": EventType.VERIFICATION_COMPLETED,
    "expired": EventType.VERIFICATION_EXPIRED,
    "cancelled": EventType.VERIFICATION_CANCELLED,
}


async def subscribed_endpoints(session: AsyncSession, user_id: uuid.UUID, event_type: EventType) -> list[uuid.UUID]:
    """The user's enabled endpoints that want `event_type`, if the user's tier has webhooks."""
    rows = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events)
        .join(User, User.id == WebhookEndpoint.user_id)
        .join(TierPlan, TierPlan.name == User.tier)
        .where(WebhookEndpoint.user_id == user_id, WebhookEndpoint.enabled.is_(True), TierPlan.webhooks.is_(True))
        .order_by(WebhookEndpoint.id)
    )
    return [endpoint_id for endpoint_id, events in rows.tuples() if event_type.value in events]


async def record_event(
    session: AsyncSession,
    user_id: uuid.UUID,
    event_type: EventType,
    dedupe_key: str,
    data: Any,
    *,
    endpoints: list[uuid.UUID] | None = None,
) -> uuid.UUID | None:
    """Record the event and request its deliveries; None when nobody is subscribed or the same change (its
    `dedupe_key`) was recorded before."""
    if endpoints is None:
        endpoints = await subscribed_endpoints(session, user_id, event_type)
    if not endpoints:
        return None
    now = utcnow()
    event = WebhookEvent(
        id=uuid7(),
        user_id=user_id,
        type=event_type.value,
        dedupe_key=dedupe_key,
        body=msgspec.json.encode(WebhookBody(type=event_type.value, timestamp=now, data=data)).decode(),
        created_at=now,
    )
    inserted = await session.execute(insert_or_skip_into(_EVENTS, ("dedupe_key",)), column_values(event))
    if not rowcount(inserted):
        return None
    deliveries = [
        WebhookDelivery(
            id=uuid7(),
            endpoint_id=endpoint_id,
            event_id=event.id,
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            failures=0,
            series_started_at=now,
            next_attempt_at=now,
            lease_until=None,
            last_status_code=None,
            last_error=None,
            delivered_at=None,
            created_at=now,
            updated_at=now,
        )
        for endpoint_id in endpoints
    ]
    await session.execute(_INSERT_DELIVERIES, [column_values(delivery) for delivery in deliveries])
    outbox = OutboxService(session=session)
    for delivery in deliveries:
        await outbox.request(DeliverWebhook(delivery_id=delivery.id))
    logger.info("webhook_event_recorded", event_id=str(event.id), type=event_type.value, deliveries=len(deliveries))
    return event.id


async def verification_changed(
    session: AsyncSession, verification_id: uuid.UUID, user_id: uuid.UUID, status: str
) -> None:
    """A verification moved to `status`: completed, expired and cancelled are events, other statuses are not."""
    event_type = VERIFICATION_EVENTS.get(status)
    if event_type is None or not (endpoints := await subscribed_endpoints(session, user_id, event_type)):
        return
    verification = (
        await session.scalars(
            select(Verification).where(Verification.id == verification_id).execution_options(populate_existing=True)
        )
    ).one()
    messages = (
        await session.scalars(
            select(VerificationMessage)
            .where(VerificationMessage.verification_id == verification_id)
            .order_by(VerificationMessage.received_at, VerificationMessage.id)
        )
    ).all()
    data = VerificationRead.of(verification, list(messages))
    await record_event(session, user_id, event_type, f"{event_type}:{verification_id}", data, endpoints=endpoints)


async def rental_message_recorded(session: AsyncSession, rental_id: uuid.UUID, message: dict[str, Any]) -> None:
    """A new SMS on a rented number; `message` holds the values of the `rental_messages` row just inserted."""
    rental = (await session.execute(select(Rental).where(Rental.id == rental_id))).scalar_one()
    data = RentalMessageData(
        id=message["id"],
        rental_id=rental_id,
        phone_number=rental.phone_number,
        service=rental.service,
        text=message["text"],
        code=message["code"],
        received_at=message["received_at"],
    )
    await record_event(session, rental.user_id, EventType.RENTAL_MESSAGE, f"rental.message:{message['id']}", data)


async def rentals_expiring(session: AsyncSession, now: datetime, *, notice: timedelta = EXPIRING_NOTICE) -> int:
    """`rental.expiring` for every active rental that ends within `notice` and will not renew itself, once per
    end (an extension moves the end, and the new end gets its own notice). Answers how many were recorded."""
    listeners = select(WebhookEndpoint.user_id).where(WebhookEndpoint.enabled.is_(True))
    rentals = (
        await session.scalars(
            select(Rental).where(
                Rental.status == RentalStatus.ACTIVE.value,
                Rental.auto_renew.is_(False),
                Rental.ends_at > now,
                Rental.ends_at <= now + notice,
                Rental.user_id.in_(listeners),
            )
        )
    ).all()
    recorded = 0
    for rental in rentals:
        key = f"rental.expiring:{rental.id}:{int(rental.ends_at.timestamp())}"
        recorded += (
            await record_event(session, rental.user_id, EventType.RENTAL_EXPIRING, key, RentalRead.of(rental))
            is not None
        )
    return recorded


async def wallet_credited(session: AsyncSession, user_id: uuid.UUID, booking: Booking) -> None:
    """Money went into the wallet (top-up, grant, refund); a booking repeated under its reference is no event."""
    if booking.created:
        data = WalletTransaction.of(booking.entry, booking.transaction)
        key = f"wallet.credited:{booking.transaction.id}"
        await record_event(session, user_id, EventType.WALLET_CREDITED, key, data)
