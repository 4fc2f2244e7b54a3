"""The webhook tables: partner endpoints, the events recorded for them, one delivery per event and endpoint, and
every attempt of a delivery."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC, EncryptedString, FernetBackend, JsonB
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase, UUIDv7Base, utcnow
from namaskah.settings import get_settings


class EventType(StrEnum):
    VERIFICATION_COMPLETED = "verification.completed"
    VERIFICATION_EXPIRED = "verification.expired"
    VERIFICATION_CANCELLED = "verification.cancelled"
    RENTAL_MESSAGE = "rental.message"
    RENTAL_EXPIRING = "rental.expiring"
    WALLET_CREDITED = "wallet.credited"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being sent: see `lease_until`)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries ran out, or the endpoint was disabled first


def webhook_message_id(delivery_id: uuid.UUID) -> str:
    """The `webhook-id` header of a delivery: the same for every attempt and replay of it."""
    return f"msg_{delivery_id.hex}"


def webhook_secret_key() -> bytes:
    """Derived from SECRET_KEY when used, not at import; its own key, like the TOTP secrets'."""
    return hmac.new(get_settings().secret_key.encode(), b"namaskah/webhook-secret", hashlib.sha256).digest()


class WebhookEndpoint(UUIDv7AuditBase):
    """A partner's URL and the event types it wants. The signing secret is stored encrypted and shown only once.
    `consecutive_failures` and `failing_since` describe the current unbroken run of failed attempts (reset by a
    success); a long enough run disables the endpoint."""

    __tablename__ = "webhook_endpoints"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JsonB)
    secret: Mapped[str] = mapped_column(EncryptedString(key=webhook_secret_key, backend=FernetBackend, length=64))
    enabled: Mapped[bool] = mapped_column(default=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    failing_since: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class WebhookEvent(UUIDv7Base):
    """What happened, as the exact JSON body every delivery of it sends (replays send the same bytes).
    `dedupe_key` names the change it reports, so one change records one event however often it is reported."""

    __tablename__ = "webhook_events"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class WebhookDelivery(UUIDv7AuditBase):
    """One event to one endpoint. `attempts` numbers the attempts (and fences a slow attempt off from the row once
    another one claimed it); `failures` and `series_started_at` drive the retry schedule, which a replay restarts.
    `lease_until` is set while an attempt is in flight: past it, a crashed attempt's delivery is due again."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_known"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        # The sweep for deliveries left pending past their time scans only pending ones.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    series_started_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class WebhookAttempt(UUIDv7Base):
    """One HTTP attempt: its answer's status (None after a network error), how long it took, and the start of
    the answer's body."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    duration_ms: Mapped[int]
    status_code: Mapped[int | None] = mapped_column(default=None)
    succeeded: Mapped[bool]
    error: Mapped[str | None] = mapped_column(String(200), default=None)
    response_body: Mapped[str | None] = mapped_column(String(1024), default=None)
