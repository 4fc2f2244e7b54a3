"""The reconciliation table: each difference between Paystack and our books, stored once per run window."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7Base, utcnow
from namaskah.domain.billing.models import REFERENCE_MAX


class DifferenceKind(StrEnum):
    MISSED = "missed"  # a success at Paystack with no credit in our ledger
    PHANTOM = "phantom"  # a credit in our ledger with no successful transaction at Paystack
    AMOUNT = "amount"  # both sides know it, with different amounts
    CURRENCY = "currency"  # both sides know it, in different currencies
    STATUS = "status"  # Paystack reports success, our top-up is still pending or failed


_KINDS = ", ".join(f"'{k.value}'" for k in DifferenceKind)


class ReconciliationDifference(UUIDv7Base):
    """What one run found about one reference. Unique on the run's window, the reference and the kind: a rerun of
    the same window stores nothing twice. Reporting only: nothing here moves money."""

    __tablename__ = "reconciliation_differences"
    __table_args__ = (
        UniqueConstraint(
            "window_start",
            "window_end",
            "reference",
            "kind",
            name="uq_reconciliation_differences_window_kind",
        ),
        CheckConstraint(f"kind IN ({_KINDS})", name="kind_known"),
        Index("ix_reconciliation_differences_resolved_at_found_at", "resolved_at", "found_at"),
    )

    window_start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX))
    kind: Mapped[str] = mapped_column(String(16))
    paystack_status: Mapped[str | None] = mapped_column(String(16), default=None)
    paystack_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    paystack_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    our_status: Mapped[str | None] = mapped_column(String(16), default=None)  # the top-up's, if we have one
    our_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    our_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    detail: Mapped[str] = mapped_column(String(500))
    found_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id"), default=None)
    resolution_note: Mapped[str | None] = mapped_column(String(500), default=None)
