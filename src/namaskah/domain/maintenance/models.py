"""Pings received by a worker: the observable side effect of the example job."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7Base, utcnow


class Ping(UUIDv7Base):
    __tablename__ = "pings"

    token: Mapped[str] = mapped_column(String(64), unique=True)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    received_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
