"""Audit rows, each chained to the one before by a hash, and the one-row head that serialises appends."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7Base

# The prev_hash of the first entry.
GENESIS_HASH = "0" * 64
HEAD_ID = 1


class AuditLog(UUIDv7Base):
    """Append-only. No foreign keys on purpose: deleting a user must neither cascade into nor rewrite the log."""

    __tablename__ = "audit_logs"

    sequence: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(GUID, index=True, default=None)
    actor_api_key_id: Mapped[uuid.UUID | None] = mapped_column(GUID, default=None)
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(255), default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JsonB, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JsonB, default=None)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(DefaultBase):
    """The last entry's sequence and hash. Every append locks this row, so appends happen one at a time."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
