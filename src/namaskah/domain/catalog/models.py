"""The services table: what we sell, which provider service it maps to, what that costs us and our markup."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase

# Provider costs are exact decimals in the provider's currency (TextVerified prices in USD with cents and below).
Cost = Numeric(14, 4)


class CatalogEntry(UUIDv7AuditBase):
    """One sellable service. `cost` and `rental_cost_per_day` come from the provider (`namaskah catalog sync`);
    `markup_bps` and `active` are ours (operators), kept across syncs."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("cost >= 0", name="cost_not_negative"),
        CheckConstraint("rental_cost_per_day IS NULL OR rental_cost_per_day >= 0", name="rental_cost_not_negative"),
        CheckConstraint("markup_bps >= 10000", name="markup_at_least_cost"),
    )

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    provider: Mapped[str] = mapped_column(String(32))
    provider_service: Mapped[str] = mapped_column(String(120))
    cost: Mapped[Decimal] = mapped_column(Cost)
    cost_currency: Mapped[str] = mapped_column(String(3))
    rental_cost_per_day: Mapped[Decimal | None] = mapped_column(Cost, default=None)
    markup_bps: Mapped[int] = mapped_column(default=15_000)
    active: Mapped[bool] = mapped_column(default=True)
    synced_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
