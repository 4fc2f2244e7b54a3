"""Reading tiers, and operators changing a tier's limit, features or plan price (audited, in effect at once)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import select

from namaskah.domain.audit.service import AuditService
from namaskah.domain.tiers.models import TierPlan
from namaskah.domain.tiers.schemas import TierUpdate
from namaskah.lib.errors import DomainError

FIELDS = (
    "rate_limit_per_minute",
    "discount_bps",
    "rentals",
    "webhooks",
    "area_code_choice",
    "price_per_month",
    "included_monthly_credit",
)
MONEY_FIELDS = ("price_per_month", "included_monthly_credit")
# NGN 10 million a month: far above any plan, and well inside a BIGINT after tax and a year of renewals.
MAX_PLAN_AMOUNT = 1_000_000_000


class TierNotFound(DomainError):
    status_code = 404
    code = "tier_not_found"
    title = "Tier not found"


class InvalidPlanPrice(DomainError):
    status_code = 422
    code = "invalid_plan_price"
    title = "Invalid plan price"


class TierRepository(SQLAlchemyAsyncRepository[TierPlan]):
    model_type = TierPlan
    id_attribute = "name"


class TierService(SQLAlchemyAsyncRepositoryService[TierPlan, TierRepository]):
    repository_type = TierRepository

    async def all(self) -> Sequence[TierPlan]:
        return (await self.repository.session.scalars(select(TierPlan).order_by(TierPlan.rate_limit_per_minute))).all()

    async def change(self, name: str, changes: TierUpdate) -> TierPlan:
        """Apply the fields set in `changes`; 404 `tier_not_found`, 422 `invalid_plan_price`. A new price applies
        from the next period charged (renewals, new subscriptions); a period already paid is not charged again."""
        _check_money(changes)
        query = select(TierPlan).where(TierPlan.name == name).with_for_update()
        tier = (await self.repository.session.scalars(query)).one_or_none()
        if tier is None:
            raise TierNotFound(f"No tier named {name!r}")
        before: dict[str, Any] = {field: getattr(tier, field) for field in FIELDS}
        for field in FIELDS:
            if (value := getattr(changes, field)) is not None:
                setattr(tier, field, value)
        after = {field: getattr(tier, field) for field in FIELDS}
        if after != before:
            await AuditService(self.repository.session).record(
                "admin.tier.updated", subject_type="tier", subject_id=name, before=before, after=after
            )
        return tier


def _check_money(changes: TierUpdate) -> None:
    """Prices and credits are whole kobo from 0 to MAX_PLAN_AMOUNT (msgspec already refused non-integers)."""
    for field in MONEY_FIELDS:
        value = getattr(changes, field)
        if value is not None and not 0 <= value <= MAX_PLAN_AMOUNT:
            raise InvalidPlanPrice(f"{field} is a whole number of kobo from 0 to {MAX_PLAN_AMOUNT}, not {value}")
