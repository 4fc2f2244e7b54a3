"""Tax rates: which rate applies to a buyer (their country, else TAX_DEFAULT_COUNTRY), quotes in TAX_MODE at the
TAX_POINT (whether top-ups or subscriptions carry the tax), and operators replacing a country's rate (audited)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import select

from namaskah.db.base import utcnow
from namaskah.db.service import ConfiguredService
from namaskah.db.upsert import insert_or_skip
from namaskah.domain.audit.service import AuditService
from namaskah.domain.tax.calc import TaxBasis, TaxMode, TaxPoint, TaxSplit, apply_tax, percent_text
from namaskah.domain.tax.models import TaxRate
from namaskah.domain.tax.schemas import COUNTRY_PATTERN, TaxRatePut
from namaskah.lib.errors import DomainError

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
    # CHARGED: this rate is charged here. Otherwise the rate is 0 here because the tax is charged elsewhere (on the
    # top-ups, or when prepaid credits are used): see TAX_POINT.
    basis: TaxBasis = TaxBasis.CHARGED

    @property
    def label(self) -> str:
        """`VAT 7.5%`, or `VAT (charged on top-ups)`, as documents print it."""
        return tax_label(self.name, self.rate_bps, self.basis)

    def not_charged(self, basis: TaxBasis) -> AppliedRate:
        """The same tax at 0 here, saying where it is charged instead."""
        return replace(self, rate_bps=0, basis=basis)

    @classmethod
    def of(cls, rate: TaxRate) -> AppliedRate:
        return cls(country=rate.country, name=rate.name, rate_bps=rate.rate_bps)


@dataclass(frozen=True, slots=True)
class Quote:
    rate: AppliedRate
    mode: TaxMode
    split: TaxSplit


def tax_label(name: str, rate_bps: int, basis: TaxBasis | str) -> str:
    """What an invoice's tax line says: the rate charged, or where the tax was (or will be) charged instead."""
    match TaxBasis(basis):
        case TaxBasis.ON_TOPUPS:
            return f"{name} (charged on top-ups)"
        case TaxBasis.PREPAYMENT:
            return f"{name} (prepayment, charged on use)"
        case TaxBasis.CHARGED:
            return f"{name} {percent_text(rate_bps)}"


def normalize_country(country: str) -> str:
    """`ng` or ` NG ` as `NG`; 422 `invalid_country` for anything but two ASCII letters."""
    code = country.strip().upper()
    if not _COUNTRY.fullmatch(code):
        raise InvalidCountry(f"{country!r} is not an ISO 3166-1 alpha-2 country code (e.g. NG)")
    return code


class TaxRateRepository(SQLAlchemyAsyncRepository[TaxRate]):
    model_type = TaxRate
    id_attribute = "country"


class TaxService(ConfiguredService[TaxRate, TaxRateRepository]):
    """Joins the caller's transaction. Other areas quote with `quote`; invoices take `rate_for`."""

    repository_type = TaxRateRepository

    @property
    def mode(self) -> TaxMode:
        return TaxMode(self.settings.tax_mode)

    @property
    def point(self) -> TaxPoint:
        return TaxPoint(self.settings.tax_point)

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

    async def quote_topup(self, amount: int, *, country: str | None = None) -> Quote:
        """A top-up of `amount` credits. TAX_POINT=payment: the taxable supply, quoted as TAX_MODE says (the
        customer pays `split.gross`, `amount` is credited). TAX_POINT=usage: a prepayment, at 0 here."""
        rate = await self.rate_for(country)
        if self.point is TaxPoint.USAGE:
            return self._untaxed(amount, rate.not_charged(TaxBasis.PREPAYMENT))
        return await self.quote(amount, rate=rate)

    async def quote_subscription(self, price: int, *, rate: AppliedRate | None = None) -> Quote:
        """A month of a plan paid from wallet credits. TAX_POINT=payment: the credits were taxed when they were
        bought, so no tax is added a second time (0 here). TAX_POINT=usage: taxed as TAX_MODE says."""
        rate = rate or await self.rate_for()
        if self.point is TaxPoint.PAYMENT:
            return self._untaxed(price, rate.not_charged(TaxBasis.ON_TOPUPS))
        return await self.quote(price, rate=rate)

    def _untaxed(self, amount: int, rate: AppliedRate) -> Quote:
        return Quote(rate=rate, mode=self.mode, split=apply_tax(amount, 0, self.mode))

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
