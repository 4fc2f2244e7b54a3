"""The simulator's own tables: the numbers it sold and the SMS delivered to them, shared by every process."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7Base, utcnow


class SimulatorReservation(UUIDv7Base):
    """A number the simulator reserved: one verification or one rental. These rows stand for an external
    system's records, so nothing of ours points at them; our verifications keep the id as a string."""

    __tablename__ = "simulator_reservations"
    __table_args__ = (
        CheckConstraint("kind IN ('verification', 'rental')", name="kind_known"),
        CheckConstraint("cost >= 0", name="cost_not_negative"),
    )

    kind: Mapped[str] = mapped_column(String(16))
    service: Mapped[str] = mapped_column(String(120))
    # Never reused, so a delivered SMS finds exactly one reservation by its number.
    phone_number: Mapped[str] = mapped_column(String(20), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    # The caller's key: a repeated create finds the first reservation through this constraint.
    idempotency_key: Mapped[str] = mapped_column(String(256), unique=True)
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class SimulatorMessage(UUIDv7Base):
    """One SMS the simulator delivered to a reserved number."""

    __tablename__ = "simulator_messages"

    reservation_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("simulator_reservations.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(String(1600))
    code: Mapped[str | None] = mapped_column(String(8), default=None)
    sender: Mapped[str | None] = mapped_column(String(32), default=None)
    received_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
