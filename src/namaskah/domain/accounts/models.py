"""Users, their refresh tokens (stored only as hashes, rotated on every use) and their 2FA recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC, EncryptedString, FernetBackend
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase, UUIDv7Base, utcnow
from namaskah.domain.tiers.models import TierPlan
from namaskah.settings import get_settings


class Tier(StrEnum):
    FREE = "free"
    PAYG = "payg"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class Role(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"


def totp_encryption_key() -> bytes:
    """Derived from SECRET_KEY when used, not at import; its own key, so it never equals the JWT signing key."""
    return hmac.new(get_settings().secret_key.encode(), b"namaskah/totp-secret", hashlib.sha256).digest()


class User(UUIDv7AuditBase):
    __tablename__ = "users"

    # Stored normalised (trimmed, lower-case), so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    tier: Mapped[str] = mapped_column(String(20), ForeignKey(TierPlan.name), default=Tier.FREE.value)
    role: Mapped[str] = mapped_column(String(20), default=Role.CUSTOMER.value)
    is_active: Mapped[bool] = mapped_column(default=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # Set by 2FA setup; it only guards logins once enable has seen a valid code (totp_enabled_at).
    totp_secret: Mapped[str | None] = mapped_column(
        EncryptedString(key=totp_encryption_key, backend=FernetBackend, length=64), default=None
    )
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # The time step of the last accepted code: a code of this step or an older one is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(default=None)

    @property
    def totp_enabled(self) -> bool:
        return self.totp_enabled_at is not None


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


class RecoveryCode(UUIDv7Base):
    """A single-use second factor handed out when 2FA is enabled; only its salted hash is stored."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
