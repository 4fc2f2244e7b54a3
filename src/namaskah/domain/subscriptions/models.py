"""The subscriptions table: a user's paid plan, its current monthly period, and how that period ends."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase
from namaskah.domain.tiers.models import TierPlan


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"  # the current period is paid
    PAST_DUE = "past_due"  # the period ended and the next one could not be charged yet: the grace period
    CANCELED = "canceled"  # ended at a period end because the customer cancelled (or the account was disabled)
    LAPSED = "lapsed"  # ended at the grace period's end, unpaid


# A user has at most one subscription in these states (the partial unique index below).
CURRENT = (SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value)
_CURRENT_SQL = "status IN ('active', 'past_due')"


class Subscription(UUIDv7AuditBase):
    """`period` numbers the paid periods (1 for the first; an upgrade starts the next number at once) and is in
    every ledger reference and invoice of the subscription, so a period is charged, credited and invoiced once.
    Periods end on the day of the month of `anchor_at` (clamped to short months), at its time of day.
    `next_plan` is a cheaper plan that takes over at the period end; `price` is what the current period cost."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'past_due', 'canceled', 'lapsed')", name="status_known"),
        CheckConstraint("period >= 1", name="period_positive"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        Index(
            "uq_subscriptions_user_current",
            "user_id",
            unique=True,
            postgresql_where=text(_CURRENT_SQL),
            sqlite_where=text(_CURRENT_SQL),
        ),
        # The renewal sweep's lookup: current subscriptions whose period has ended.
        Index("ix_subscriptions_status_period_end", "status", "current_period_end"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"), index=True)
    plan: Mapped[str] = mapped_column(String(20), ForeignKey(TierPlan.name))
    next_plan: Mapped[str | None] = mapped_column(String(20), ForeignKey(TierPlan.name), default=None)
    status: Mapped[str] = mapped_column(String(16), default=SubscriptionStatus.ACTIVE.value)
    period: Mapped[int] = mapped_column(Integer, default=1)
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    anchor_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    current_period_start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    current_period_end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
