"""API keys: the secret is kept only as a SHA-256 hash; the prefix finds the row."""

from __future__ import annotations

import uuid
from datetime import datetime

from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase


class ApiKey(UUIDv7AuditBase):
    __tablename__ = "api_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JsonB)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
