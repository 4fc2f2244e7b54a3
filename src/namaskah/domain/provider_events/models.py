"""The provider_events table: every push a provider sent us, once, and what its job made of it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import CheckConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7Base, utcnow


class ProviderEventStatus(StrEnum):
    PENDING = "pending"  # stored; its job has not settled it yet
    PROCESSED = "processed"  # applied to one of our verifications or rentals
    UNMATCHED = "unmatched"  # about a reservation none of ours holds, after the job looked again a few times
    IGNORED = "ignored"  # nothing our model holds changes with it (unknown type, billing cycles, ...)


class ProviderEvent(UUIDv7Base):
    """One event as the provider sent it. `(provider, event_id)` is unique: a redelivery (the vendor retries until
    it gets a 200, and its body then differs in `attempt`) stores nothing and requests no job."""

    __tablename__ = "provider_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        CheckConstraint("status IN ('pending', 'processed', 'unmatched', 'ignored')", name="status_known"),
    )

    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(256))
    idempotency_key: Mapped[str] = mapped_column(String(256))
    event_type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    delivery_attempt: Mapped[int] = mapped_column(Integer)  # the vendor's send attempt that we stored
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB)
    status: Mapped[str] = mapped_column(String(16), default=ProviderEventStatus.PENDING.value)
    detail: Mapped[str | None] = mapped_column(String(200), default=None)  # what the job did, for operators
    match_attempts: Mapped[int] = mapped_column(Integer, default=0)  # looks for a reservation that was not ours yet
    received_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
