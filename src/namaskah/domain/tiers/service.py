"""Reading tiers, and operators changing a tier's limit or features (audited, in effect at once)."""

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

FIELDS = ("rate_limit_per_minute", "discount_bps", "rentals", "webhooks", "area_code_choice")


class TierNotFound(DomainError):
    status_code = 404
    code = "tier_not_found"
    title = "Tier not found"


class TierRepository(SQLAlchemyAsyncRepository[TierPlan]):
    model_type = TierPlan
    id_attribute = "name"


class TierService(SQLAlchemyAsyncRepositoryService[TierPlan, TierRepository]):
    repository_type = TierRepository

    async def all(self) -> Sequence[TierPlan]:
        return (await self.repository.session.scalars(select(TierPlan).order_by(TierPlan.rate_limit_per_minute))).all()

    async def change(self, name: str, changes: TierUpdate) -> TierPlan:
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
