"""Bodies of the operator tier routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.tiers.models import TierPlan


class TierRead(msgspec.Struct, frozen=True):
    name: str
    rate_limit_per_minute: int
    discount_bps: int
    rentals: bool
    webhooks: bool
    area_code_choice: bool
    updated_at: datetime
    # The plan's monthly subscription price and the credit each paid month grants, in kobo (0: not sold).
    price_per_month: int
    included_monthly_credit: int

    @classmethod
    def of(cls, tier: TierPlan) -> TierRead:
        return cls(
            name=tier.name,
            rate_limit_per_minute=tier.rate_limit_per_minute,
            discount_bps=tier.discount_bps,
            rentals=tier.rentals,
            webhooks=tier.webhooks,
            area_code_choice=tier.area_code_choice,
            updated_at=tier.updated_at,
            price_per_month=tier.price_per_month,
            included_monthly_credit=tier.included_monthly_credit,
        )


class TierList(msgspec.Struct, frozen=True):
    items: list[TierRead]
    total: int


class TierUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rate_limit_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    # At most 90% off: a tier never sells below cost by mistake of a keystroke.
    discount_bps: Annotated[int, msgspec.Meta(ge=0, le=9_000)] | None = None
    rentals: bool | None = None
    webhooks: bool | None = None
    area_code_choice: bool | None = None
    # Whole kobo, checked by the service (422 `invalid_plan_price`); renewals from then on charge the new price.
    price_per_month: int | None = None
    included_monthly_credit: int | None = None
