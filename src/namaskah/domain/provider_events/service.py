"""Storing a provider's push once, and what each kind of event changes: an SMS goes to the verification or rental
holding its reservation; the other events change nothing our model holds and are kept for operators."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Table, select, update
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import rowcount
from namaskah.db.service import Service
from namaskah.db.upsert import insert_or_skip_into
from namaskah.domain.provider_events.jobs import ProcessProviderEvent
from namaskah.domain.provider_events.models import ProviderEvent, ProviderEventStatus
from namaskah.domain.provider_events.schemas import (
    BackOrderFulfilled,
    BillingCycleEvent,
    EventData,
    ReservationCreated,
    WebhookEnvelope,
)
from namaskah.domain.rentals.models import Rental
from namaskah.domain.rentals.service import RentalService
from namaskah.domain.verifications.models import Verification
from namaskah.domain.verifications.service import VerificationService
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService
from namaskah.providers.base import ProviderMessage, ReservationKind

logger = get_logger(__name__)

_E = ProviderEvent
_EVENTS: Table = ProviderEvent.__table__  # type: ignore[assignment]
_INSERT_OR_SKIP = insert_or_skip_into(_EVENTS, ("provider", "event_id"))
PENDING = ProviderEventStatus.PENDING.value


@dataclass(frozen=True, slots=True)
class Reservation:
    """The verification or rental of ours that a provider's reservation id names."""

    kind: ReservationKind
    id: uuid.UUID
    provider: str  # the provider that sold it
    provider_id: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.id}"


class ProviderEventRepository(SQLAlchemyAsyncRepository[ProviderEvent]):
    model_type = ProviderEvent


class ProviderEventService(Service[ProviderEvent, ProviderEventRepository]):
    """Joins the caller's transaction; the event's job is requested through the outbox, so none runs for an event
    whose row did not commit."""

    repository_type = ProviderEventRepository

    # --- receiving ----------------------------------------------------------------------------------------

    async def receive(self, provider: str, envelope: WebhookEnvelope, payload: dict[str, Any]) -> bool:
        """Store the event and request its job: True when it is new; False for one stored before (a redelivery,
        even concurrent with the first), which writes nothing. The row goes in first: a concurrent twin waits
        on the unique index until this transaction ends, then inserts nothing."""
        session, row_id = self._session, uuid7()
        values = {
            "id": row_id, "provider": provider, "event_id": envelope.id, "idempotency_key": envelope.idempotency_key,
            "event_type": envelope.event, "occurred_at": _utc(envelope.occurred_at),
            "delivery_attempt": envelope.attempt, "payload": payload, "status": PENDING, "detail": None,
            "match_attempts": 0, "received_at": utcnow(), "processed_at": None,
        }  # fmt: skip
        fields = {"provider": provider, "event_id": envelope.id, "event_type": envelope.event}
        if not rowcount(await session.execute(_INSERT_OR_SKIP, values)):
            logger.info("provider_event_duplicate", delivery_attempt=envelope.attempt, **fields)
            return False
        await OutboxService(session=session).request(ProcessProviderEvent(event_id=row_id))
        logger.info("provider_event_received", **fields)
        return True

    # --- what the job reads -------------------------------------------------------------------------------

    async def pending(self, event_id: uuid.UUID) -> ProviderEvent | None:
        """The event while nothing settled it, locked until the transaction ends: concurrent runs of its job
        take turns, and the later one finds it settled."""
        query = (
            select(_E)
            .where(_E.id == event_id, _E.status == PENDING)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self._session.scalars(query)).one_or_none()

    async def reservation(self, provider_id: str) -> Reservation | None:
        """Ours holding the provider's reservation `provider_id`: a verification, else a rental."""
        for kind, model in ((ReservationKind.VERIFICATION, Verification), (ReservationKind.RENTAL, Rental)):
            query = select(model.id, model.provider).where(model.provider_id == provider_id).order_by(model.id)
            row = (await self._session.execute(query.limit(1))).one_or_none()
            if row is not None:
                return Reservation(kind, row.id, row.provider, provider_id)
        return None

    # --- what the job reports -----------------------------------------------------------------------------

    async def record_sms(self, event: ProviderEvent, reservation: Reservation, message: ProviderMessage) -> None:
        """Store the SMS as polling would (a message seen before is skipped; the first with text completes an open
        verification) and settle the event."""
        if reservation.kind is ReservationKind.VERIFICATION:
            await VerificationService(session=self._session).record_messages(reservation.id, [message])
        else:
            await RentalService(session=self._session).record_messages(reservation.id, [message])
        await self._settle(event, ProviderEventStatus.PROCESSED, f"sms for {reservation}")

    async def look_again(self, event: ProviderEvent, reservation_id: str | None, allowed: int) -> bool:
        """No reservation of ours matched the SMS: True while the job should look again later (the job buying the
        number may not have committed it yet), counting the look; after `allowed` looks, or with no reservation
        id at all, the event is settled unmatched (polling brings the SMS in once the number is recorded)."""
        looks = event.match_attempts + 1
        if reservation_id is not None and looks < allowed:
            await self._session.execute(update(_E).where(_E.id == event.id).values(match_attempts=looks))
            return True
        await self._settle(
            event, ProviderEventStatus.UNMATCHED, f"no verification or rental holds reservation {reservation_id}"
        )
        logger.warning("provider_event_unmatched", event_id=event.event_id, reservation_id=reservation_id, looks=looks)
        return False

    async def settle_other(self, event: ProviderEvent, data: EventData | None) -> None:
        """Every event but an SMS: our model holds nothing these change, so each is kept, logged and settled."""
        fields = {"event_id": event.event_id, "event_type": event.event_type}
        if isinstance(data, ReservationCreated):
            # We made the reservation ourselves: the job that bought it recorded it from the provider's answer.
            ours = await self.reservation(data.id)
            detail = f"reservation {data.id} is {ours}" if ours else f"reservation {data.id} ({data.type}) not ours"
            logger.info("provider_event_reservation_created", reservation_id=data.id, ours=bool(ours), **fields)
        elif isinstance(data, BillingCycleEvent):
            # Our rentals are non-renewable (see the adapter): none belongs to a billing cycle, and the event
            # names only the cycle. One means the account holds renewable rentals we did not make.
            detail = f"billing cycle {data.billing_cycle_id}: our rentals belong to none"
            logger.warning("provider_event_foreign_billing_cycle", billing_cycle_id=data.billing_cycle_id, **fields)
        elif isinstance(data, BackOrderFulfilled):
            detail = f"back order {data.back_order_id}: we never order back orders"
            logger.warning("provider_event_foreign_back_order", back_order_id=data.back_order_id, **fields)
        else:
            detail = "event type unknown to us"
            logger.info("provider_event_unknown_type", **fields)
        await self._settle(event, ProviderEventStatus.IGNORED, detail)

    async def _settle(self, event: ProviderEvent, status: ProviderEventStatus, detail: str) -> None:
        await self._session.execute(
            update(_E)
            .where(_E.id == event.id, _E.status == PENDING)
            .values(status=status.value, detail=detail[:200], processed_at=utcnow())
        )
        logger.info("provider_event_settled", event_id=event.event_id, status=status.value, detail=detail)


def _utc(moment: datetime) -> datetime:
    # The document's date-times carry an offset; one without is read as UTC, never as local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
