"""`GET /v1/services`: what is for sale and what it costs the caller."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.caller import identify, refusal
from namaskah.domain.accounts.models import Tier
from namaskah.domain.catalog.pricing import ExchangeRates
from namaskah.domain.catalog.schemas import ServiceList
from namaskah.domain.catalog.service import CatalogService


def provide_catalog(db_session: NamedDependency[AsyncSession], state: State) -> CatalogService:
    return CatalogService(session=db_session, rates=ExchangeRates(rates=state.settings.exchange_rates))


async def provide_caller_tier(request: Request[object, object, State]) -> str:
    """The caller's tier; anonymous callers see the prices of a new account. A bad credential is still a 401."""
    caller = await identify(request)
    if caller is not None:
        return caller.user.tier
    if request.headers.get("x-api-key") or request.headers.get("authorization"):
        raise refusal(request)
    return Tier.FREE.value


catalog_dependencies = {
    "catalog": Provide(provide_catalog, sync_to_thread=False),
    "caller_tier": Provide(provide_caller_tier),
}


class CatalogController(Controller):
    path = "/v1/services"
    tags = ["catalog"]
    dependencies = catalog_dependencies

    @get("/", summary="Services for sale, priced for the caller's tier (minor units)")
    async def list_services(
        self, catalog: NamedDependency[CatalogService], caller_tier: NamedDependency[str]
    ) -> ServiceList:
        return ServiceList(items=await catalog.priced_for(caller_tier))
