"""The verifications table and the SMS each verification received."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase, UUIDv7Base, utcnow


class VerificationStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


OPEN_STATUSES = (VerificationStatus.PENDING.value, VerificationStatus.ACTIVE.value)


class Verification(UUIDv7AuditBase):
    """One purchase of one code. `request_fingerprint` is the hash of the body, so a repeated Idempotency-Key
    can tell a retry (same body) from a reuse (another body)."""

    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'active', 'completed', 'cancelled', 'expired', 'failed')", name="status_known"
        ),
        CheckConstraint("price >= 0", name="price_not_negative"),
        UniqueConstraint("user_id", "idempotency_key"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"), index=True)
    service: Mapped[str] = mapped_column(String(64))
    service_name: Mapped[str] = mapped_column(String(120))
    provider: Mapped[str] = mapped_column(String(32))
    provider_service: Mapped[str] = mapped_column(String(120))
    # Indexed: a pushed SMS names its reservation by the provider's id (migration 0016).
    provider_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    phone_number: Mapped[str | None] = mapped_column(String(20), default=None)
    status: Mapped[str] = mapped_column(String(16), default=VerificationStatus.PENDING.value)
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    area_code: Mapped[str | None] = mapped_column(String(3), default=None)
    carrier: Mapped[str | None] = mapped_column(String(32), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class VerificationMessage(UUIDv7Base):
    """One SMS; the provider's id is unique per verification so a poll that sees it again stores nothing."""

    __tablename__ = "verification_messages"
    __table_args__ = (UniqueConstraint("verification_id", "provider_message_id"),)

    verification_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("verifications.id", ondelete="CASCADE"))
    provider_message_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(1600))
    code: Mapped[str | None] = mapped_column(String(8), default=None)
    received_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
