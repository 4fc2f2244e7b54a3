"""Users and their refresh tokens (stored only as hashes, rotated on every use)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase, UUIDv7Base, utcnow


class Tier(StrEnum):
    FREE = "free"
    PAYG = "payg"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class Role(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"


class User(UUIDv7AuditBase):
    __tablename__ = "users"

    # Stored normalised (trimmed, lower-case), so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    tier: Mapped[str] = mapped_column(String(20), default=Tier.FREE.value)
    role: Mapped[str] = mapped_column(String(20), default=Role.CUSTOMER.value)
    is_active: Mapped[bool] = mapped_column(default=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class RefreshToken(UUIDv7Base):
    """One link of a login session's chain; presenting a spent link revokes the whole family."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(GUID, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
