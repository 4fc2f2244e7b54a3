"""The rentals table and every SMS a rented number received."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase, UUIDv7Base, utcnow


class RentalStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    RELEASED = "released"
    LAPSED = "lapsed"
    FAILED = "failed"


class Rental(UUIDv7AuditBase):
    """One rental. `days` is the period bought (what an auto-renewal buys again), `price` the total paid so far and
    `price_per_day` the day rate paid, which prices extensions, renewals and the refund of a release.
    `extensions` counts extensions so that each one has a ledger reference of its own. `request_fingerprint` is the
    hash of the body (None on rentals made before it was stored), so a repeated Idempotency-Key can tell a retry
    from a reuse."""

    __tablename__ = "rentals"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'active', 'expired', 'released', 'lapsed', 'failed')", name="status_known"
        ),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("days > 0", name="days_positive"),
        UniqueConstraint("user_id", "idempotency_key"),
        # The sweep looks for rentals pending too long in every API process: no scan of the whole table.
        Index("ix_rentals_status_created_at", "status", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"), index=True)
    service: Mapped[str] = mapped_column(String(64))
    service_name: Mapped[str] = mapped_column(String(120))
    provider: Mapped[str] = mapped_column(String(32))
    provider_service: Mapped[str] = mapped_column(String(120))
    # Indexed: a pushed SMS names its reservation by the provider's id (migration 0016).
    provider_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    phone_number: Mapped[str | None] = mapped_column(String(20), default=None)
    status: Mapped[str] = mapped_column(String(16), default=RentalStatus.PENDING.value)
    days: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInteger)
    price_per_day: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    auto_renew: Mapped[bool] = mapped_column(default=False)
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    starts_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)


class RentalMessage(UUIDv7Base):
    """One SMS; the provider's id is unique per rental so a poll that sees it again stores nothing."""

    __tablename__ = "rental_messages"
    __table_args__ = (
        UniqueConstraint("rental_id", "provider_message_id"),
        # The duplicate check of each push and poll reads one rental's messages around a moment.
        Index("ix_rental_messages_rental_id_received_at", "rental_id", "received_at"),
    )

    rental_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("rentals.id", ondelete="CASCADE"))
    provider_message_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(1600))
    code: Mapped[str | None] = mapped_column(String(8), default=None)
    received_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
