"""`/v1/admin/tiers`: operators read and edit each tier's request limit, feature flags and plan price."""

from __future__ import annotations

from litestar import Controller, get, patch
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.models import User
from namaskah.domain.admin.deps import admin_dependencies
from namaskah.domain.tiers.schemas import TierList, TierRead, TierUpdate
from namaskah.domain.tiers.service import TierService


def provide_tiers(db_session: NamedDependency[AsyncSession], operator: NamedDependency[User]) -> TierService:
    return TierService(session=db_session)


class AdminTierController(Controller):
    path = "/v1/admin/tiers"
    tags = ["admin"]
    dependencies = {**admin_dependencies, "tiers": Provide(provide_tiers, sync_to_thread=False)}

    @get("/", summary="Every tier with its limit and features")
    async def list_tiers(self, tiers: NamedDependency[TierService]) -> TierList:
        rows = await tiers.all()
        return TierList(items=[TierRead.of(tier) for tier in rows], total=len(rows))

    @patch(
        "/{name:str}",
        summary="Change a tier's request limit, features, monthly price or included credit; applies at once",
        description="Prices in kobo, 0 to 1,000,000,000: 422 `invalid_plan_price` otherwise (`validation_failed` "
        "for a value that is not a whole number). The next period charged (a renewal, a new subscription) pays the "
        "new price.",
    )
    async def update_tier(
        self, name: FromPath[str], data: JSONBody[TierUpdate], tiers: NamedDependency[TierService]
    ) -> TierRead:
        return TierRead.of(await tiers.change(name, data))
