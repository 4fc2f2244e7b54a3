"""`/v1/admin/tax-rates`: operators read a country's tax rate and replace it (audited)."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.models import User
from namaskah.domain.admin.deps import admin_dependencies
from namaskah.domain.tax.schemas import TaxRateList, TaxRatePut, TaxRateRead
from namaskah.domain.tax.service import TaxService


def provide_tax_rates(
    db_session: NamedDependency[AsyncSession], operator: NamedDependency[User], state: State
) -> TaxService:
    """Built from `operator`, like every admin service: no handler here runs for a caller who is not one."""
    return TaxService(session=db_session, settings=state.settings)


class AdminTaxRateController(Controller):
    path = "/v1/admin/tax-rates"
    tags = ["admin"]
    dependencies = {**admin_dependencies, "tax_rates": Provide(provide_tax_rates, sync_to_thread=False)}

    @get("/", summary="Every country's tax rate")
    async def list_rates(self, tax_rates: NamedDependency[TaxService]) -> TaxRateList:
        rows = await tax_rates.all()
        return TaxRateList(items=[TaxRateRead.of(rate) for rate in rows], total=len(rows))

    @get("/{country:str}", summary="One country's tax rate (ISO 3166-1 alpha-2)")
    async def show_rate(self, country: FromPath[str], tax_rates: NamedDependency[TaxService]) -> TaxRateRead:
        return TaxRateRead.of(await tax_rates.read(country))

    @put("/{country:str}", summary="Set a country's tax rate; applies to the next quote and invoice")
    async def put_rate(
        self, country: FromPath[str], data: JSONBody[TaxRatePut], tax_rates: NamedDependency[TaxService]
    ) -> TaxRateRead:
        return TaxRateRead.of(await tax_rates.put(country, data))
