"""TextVerified's webhook payloads, named and spelled as its OpenAPI document's WebhookEvent.* schemas (camelCase,
whatever the prose around them writes), and our answer to a push."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from namaskah.domain.provider_events.errors import MalformedEvent

# The vendor's ids are opaque strings; the bounds keep one in its column.
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]

SMS_RECEIVED = "v2.sms.received"
RESERVATION_CREATED = "v2.reservation.created"
BILLING_CYCLE_RENEWED = "v2.rental.billingcycle.renewed"
BILLING_CYCLE_EXPIRED = "v2.rental.billingcycle.expired"
BACK_ORDER_FULFILLED = "v2.rental.backorder.fulfilled"


class _Wire(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """camelCase on the wire. Fields the vendor adds later are ignored rather than refused."""


class WebhookEnvelope(_Wire, frozen=True):
    """What every WebhookEvent.* schema shares; `data` is typed per `event` (see EVENT_DATA)."""

    attempt: int
    occurred_at: datetime
    data: Any
    event: EventType
    id: EventId
    idempotency_key: EventId


class SmsReceived(_Wire, frozen=True):
    """SmsWebhookEvent. It carries no id of the SMS itself (polling's list does: see the worker)."""

    from_: str | None = msgspec.field(name="from")
    to: str
    created_at: datetime
    sms_content: str | None
    parsed_code: str | None
    encrypted: bool
    reservation_id: str | None


class ReservationCreated(_Wire, frozen=True):
    """ReservationCreatedWebhookEvent."""

    id: str
    type: Literal["verification", "rental"]


class BillingCycleEvent(_Wire, frozen=True):
    """BillingCycleWebhookEvent (renewed and expired)."""

    billing_cycle_id: str


class BackOrderFulfilled(_Wire, frozen=True):
    """BackOrderReservationWebhookEvent."""

    back_order_id: str


EventData = SmsReceived | ReservationCreated | BillingCycleEvent | BackOrderFulfilled

# The document's callbacks, by event name; another name is stored, acknowledged and ignored.
EVENT_DATA: dict[str, type[EventData]] = {
    SMS_RECEIVED: SmsReceived,
    RESERVATION_CREATED: ReservationCreated,
    BILLING_CYCLE_RENEWED: BillingCycleEvent,
    BILLING_CYCLE_EXPIRED: BillingCycleEvent,
    BACK_ORDER_FULFILLED: BackOrderFulfilled,
}


def typed_data(event_type: str, data: Any) -> EventData | None:
    """The event's `data` as its schema's Struct; None for an event type the document does not list. Raises
    msgspec.ValidationError when a listed type's data does not match its schema."""
    shape = EVENT_DATA.get(event_type)
    return None if shape is None else msgspec.convert(data, shape)


def parse_event(body: bytes) -> tuple[WebhookEnvelope, dict[str, Any]]:
    """The envelope and the whole payload (what is stored). The data of an event type the document lists must
    match its schema; another type's data is kept as it came."""
    try:
        payload = msgspec.json.decode(body)
        envelope = msgspec.convert(payload, WebhookEnvelope)
        typed_data(envelope.event, envelope.data)
    except msgspec.MsgspecError as exc:
        raise MalformedEvent(f"Not a TextVerified webhook event: {exc}") from None
    return envelope, payload


class ProviderEventAck(msgspec.Struct, frozen=True, kw_only=True):
    """Our 200: the event's id, and whether we had it already (a redelivery changes nothing)."""

    id: str
    duplicate: bool
