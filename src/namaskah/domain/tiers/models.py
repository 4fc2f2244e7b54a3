"""The tiers table: one row per tier name that users.tier refers to."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import utcnow


class TierPlan(DefaultBase):
    """Seeded by migration 0007 with the defaults: free 10, payg 30, pro 100, enterprise 500 requests/min."""

    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint("price_per_month >= 0", name="price_not_negative"),
        CheckConstraint("included_monthly_credit >= 0", name="included_credit_not_negative"),
    )

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    rate_limit_per_minute: Mapped[int]
    # Off the catalog price, in basis points (migration 0009: pro 10%, enterprise 20%).
    discount_bps: Mapped[int] = mapped_column(default=0, server_default="0")
    rentals: Mapped[bool] = mapped_column(default=False)
    webhooks: Mapped[bool] = mapped_column(default=False)
    area_code_choice: Mapped[bool] = mapped_column(default=False)
    # The plan's subscription (migration 0020): charged from the wallet each month, in minor units of CURRENCY;
    # 0 means no subscription is sold (free, payg). The included credit is granted at each paid period's start.
    price_per_month: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    included_monthly_credit: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow)
