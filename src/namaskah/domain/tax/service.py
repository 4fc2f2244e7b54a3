"""Tax rates: which rate applies to a buyer (their country, else TAX_DEFAULT_COUNTRY), quotes in TAX_MODE, and
operators replacing a country's rate (audited)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from namaskah.db.base import utcnow
from namaskah.db.session import plain_session
from namaskah.db.upsert import insert_or_skip
from namaskah.domain.audit.service import AuditService
from namaskah.domain.tax.calc import TaxMode, TaxSplit, apply_tax, percent_text
from namaskah.domain.tax.models import TaxRate
from namaskah.domain.tax.schemas import COUNTRY_PATTERN, TaxRatePut
from namaskah.lib.errors import DomainError
from namaskah.settings import Settings

_COUNTRY = re.compile(COUNTRY_PATTERN)


class InvalidCountry(DomainError):
    status_code = 422
    code = "invalid_country"
    title = "Invalid country"


class TaxRateNotFound(DomainError):
    status_code = 404
    code = "tax_rate_not_found"
    title = "No tax rate for this country"


@dataclass(frozen=True, slots=True)
class AppliedRate:
    """A rate as it applied at one moment: what a quote used and an invoice keeps (the table may change later)."""

    country: str
    name: str
    rate_bps: int

    @property
    def label(self) -> str:
        """`VAT 7.5%`, as documents print it."""
        return f"{self.name} {percent_text(self.rate_bps)}"

    @classmethod
    def of(cls, rate: TaxRate) -> AppliedRate:
        return cls(country=rate.country, name=rate.name, rate_bps=rate.rate_bps)


@dataclass(frozen=True, slots=True)
class Quote:
    rate: AppliedRate
    mode: TaxMode
    split: TaxSplit


def normalize_country(country: str) -> str:
    """`ng` or ` NG ` as `NG`; 422 `invalid_country` for anything but two ASCII letters."""
    code = country.strip().upper()
    if not _COUNTRY.fullmatch(code):
        raise InvalidCountry(f"{country!r} is not an ISO 3166-1 alpha-2 country code (e.g. NG)")
    return code


class TaxRateRepository(SQLAlchemyAsyncRepository[TaxRate]):
    model_type = TaxRate
    id_attribute = "country"


class TaxService(SQLAlchemyAsyncRepositoryService[TaxRate, TaxRateRepository]):
    """Joins the caller's transaction. Other areas quote with `quote`; invoices take `rate_for`."""

    repository_type = TaxRateRepository

    def __init__(
        self, session: AsyncSession | async_scoped_session[AsyncSession], *, settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(session=session, **kwargs)
        self.settings = settings

    @property
    def _session(self) -> AsyncSession:
        return plain_session(self.repository.session)

    @property
    def mode(self) -> TaxMode:
        return TaxMode(self.settings.tax_mode)

    async def all(self) -> Sequence[TaxRate]:
        return (await self._session.scalars(select(TaxRate).order_by(TaxRate.country))).all()

    async def read(self, country: str) -> TaxRate:
        rate = await self._session.get(TaxRate, normalize_country(country))
        if rate is None:
            raise TaxRateNotFound(f"No tax rate is set for {normalize_country(country)}")
        return rate

    async def rate_for(self, country: str | None = None) -> AppliedRate:
        """The rate of `country`, or of TAX_DEFAULT_COUNTRY when the buyer's is not known; 404
        `tax_rate_not_found` when that country has none (quote early, so a payment never meets this)."""
        return AppliedRate.of(await self.read(country or self.settings.tax_default_country))

    async def quote(self, amount: int, *, country: str | None = None, rate: AppliedRate | None = None) -> Quote:
        """Net, tax and gross of `amount` as TAX_MODE reads it (the gross when inclusive, the net when
        exclusive): what a top-up or a subscription charges. Keep `quote.rate` to invoice at the same rate."""
        rate = rate or await self.rate_for(country)
        return Quote(rate=rate, mode=self.mode, split=apply_tax(amount, rate.rate_bps, self.mode))

    async def put(self, country: str, data: TaxRatePut) -> TaxRate:
        """Create or replace the rate of `country`; the audit entry holds the old and new name and rate."""
        code = normalize_country(country)
        session = self._session
        # Concurrent first PUTs for a country: one creates the row, every one then changes it under its lock.
        created = await session.execute(
            insert_or_skip(
                session, TaxRate, ["country"], country=code, name=data.name, rate_bps=data.rate_bps, updated_at=utcnow()
            )
        )
        query = select(TaxRate).where(TaxRate.country == code).with_for_update()
        rate = (await session.scalars(query.execution_options(populate_existing=True))).one()
        before: dict[str, Any] | None = None
        if not getattr(created, "rowcount", 0):
            before = {"name": rate.name, "rate_bps": rate.rate_bps}
            rate.name, rate.rate_bps = data.name, data.rate_bps
        after = {"name": data.name, "rate_bps": data.rate_bps}
        if before != after:
            await AuditService(session).record(
                "admin.tax_rate.updated", subject_type="tax_rate", subject_id=code, before=before, after=after
            )
        await session.flush()
        return rate
