"""Bodies of the webhook routes, and the JSON body of a webhook itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from namaskah.domain.webhooks.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class EndpointCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: Url
    events: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=len(EventType))]

    def event_names(self) -> list[str]:
        """Each type once, in the order given."""
        return list(dict.fromkeys(event.value for event in self.events))


class EndpointRead(msgspec.Struct, frozen=True):
    """Never the secret: it is shown once, by the create answer."""

    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    disabled_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointRead:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=list(endpoint.events),
            enabled=endpoint.enabled,
            disabled_at=endpoint.disabled_at,
            created_at=endpoint.created_at,
        )


class EndpointCreated(msgspec.Struct, frozen=True):
    """The only answer that carries the signing secret (`whsec_...`)."""

    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime
    secret: str

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, secret: str) -> EndpointCreated:
        read = EndpointRead.of(endpoint)
        return cls(
            id=read.id,
            url=read.url,
            events=read.events,
            enabled=read.enabled,
            created_at=read.created_at,
            secret=secret,
        )


class EndpointList(msgspec.Struct, frozen=True):
    items: list[EndpointRead]
    total: int


class AttemptRead(msgspec.Struct, frozen=True):
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    succeeded: bool
    error: str | None
    response_body: str | None

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptRead:
        return cls(
            number=attempt.number,
            started_at=attempt.started_at,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            succeeded=attempt.succeeded,
            error=attempt.error,
            response_body=attempt.response_body,
        )


class DeliveryRead(msgspec.Struct, frozen=True):
    """`webhook_id` is the `webhook-id` header every attempt and replay of this delivery sends."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    webhook_id: str
    status: str
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    attempts: list[AttemptRead]

    @classmethod
    def of(
        cls, delivery: WebhookDelivery, event_type: str, webhook_id: str, attempts: list[WebhookAttempt]
    ) -> DeliveryRead:
        return cls(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            event_type=event_type,
            webhook_id=webhook_id,
            status=delivery.status,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            delivered_at=delivery.delivered_at,
            created_at=delivery.created_at,
            attempts=[AttemptRead.of(attempt) for attempt in attempts],
        )


class DeliveryList(msgspec.Struct, frozen=True):
    items: list[DeliveryRead]
    total: int


class ReplayAccepted(msgspec.Struct, frozen=True):
    id: uuid.UUID
    webhook_id: str
    status: str


class WebhookBody(msgspec.Struct, frozen=True):
    """What a partner receives: `{type, timestamp, data}`, `data` being the object the event is about."""

    type: str
    timestamp: datetime
    data: Any


class RentalMessageData(msgspec.Struct, frozen=True):
    """`rental.message`: the SMS, with the rental and number it arrived on."""

    id: uuid.UUID
    rental_id: uuid.UUID
    phone_number: str | None
    service: str
    text: str
    code: str | None
    received_at: datetime
