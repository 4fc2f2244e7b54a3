"""The tax_rates table: one rate per buyer country, seeded by migration 0019 with Nigeria's 7.5% VAT."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import utcnow

# Past half of a price, a rate is a typo (7500 for 750), not a tax: the API and the table refuse it.
MAX_RATE_BPS = 5_000
TAX_NAME_MAX = 40


class TaxRate(DefaultBase):
    __tablename__ = "tax_rates"
    __table_args__ = (CheckConstraint(f"rate_bps >= 0 AND rate_bps <= {MAX_RATE_BPS}", name="rate_bps_range"),)

    # ISO 3166-1 alpha-2, upper case.
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    # As printed on documents: "VAT", "GST", "Sales tax".
    name: Mapped[str] = mapped_column(String(TAX_NAME_MAX))
    rate_bps: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow)
