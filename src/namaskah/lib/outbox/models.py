"""The outbox table: one row per job requested, published to the broker only once its transaction committed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7Base, utcnow


class OutboxMessage(UUIDv7Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The sweeper only ever scans rows still waiting to be published.
        Index(
            "ix_outbox_messages_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    actor: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    publish_attempts: Mapped[int] = mapped_column(default=0)
