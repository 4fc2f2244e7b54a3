"""Prices per tier, quotes for purchases, and the sync of services and costs from the provider."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import bindparam, select

from namaskah.domain.catalog.models import CatalogEntry
from namaskah.domain.catalog.pricing import ExchangeRates, price_minor
from namaskah.domain.catalog.schemas import Quote, ServiceRead, SyncReport
from namaskah.domain.tiers.models import TierPlan
from namaskah.lib.errors import DomainError
from namaskah.lib.money import CURRENCY
from namaskah.providers.base import ReservationKind, SmsProvider


class UnknownService(DomainError):
    status_code = 404
    code = "unknown_service"
    title = "Unknown service"


_ACTIVE_WITH_DISCOUNT = select(
    CatalogEntry,
    select(TierPlan.discount_bps).where(TierPlan.name == bindparam("tier")).scalar_subquery(),
).where(CatalogEntry.slug == bindparam("slug"), CatalogEntry.active.is_(True))


class CatalogRepository(SQLAlchemyAsyncRepository[CatalogEntry]):
    model_type = CatalogEntry


def slug_of(provider_service: str) -> str:
    """`WhatsApp Business` -> `whatsapp-business`: stable across syncs, safe in URLs."""
    words = "".join(c if c.isalnum() else " " for c in provider_service.lower()).split()
    return "-".join(words)[:64] or "service"


def _unique(slug: str, taken: set[str]) -> str:
    candidate, n = slug, 1
    while candidate in taken:
        n += 1
        candidate = f"{slug[:60]}-{n}"
    taken.add(candidate)
    return candidate


class CatalogService(SQLAlchemyAsyncRepositoryService[CatalogEntry, CatalogRepository]):
    repository_type = CatalogRepository

    def __init__(self, *, rates: ExchangeRates, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rates = rates

    async def priced_for(self, tier: str) -> list[ServiceRead]:
        discount = await self._discount(tier)
        rows = await self.repository.session.scalars(
            select(CatalogEntry).where(CatalogEntry.active.is_(True)).order_by(CatalogEntry.name)
        )
        return [self._read(entry, discount) for entry in rows]

    async def quote(self, slug: str, tier: str) -> Quote:
        """The price of one verification of `slug` for `tier`; 404 unknown_service for a missing or retired one."""
        entry, discount = await self._active(slug, tier)
        return Quote(entry=entry, price=self._price(entry, entry.cost, discount), currency=CURRENCY)

    async def quote_rental(self, slug: str, tier: str, days: int) -> Quote:
        """`days` of a rental of `slug`: the day price (itself rounded down) times the days."""
        entry, discount = await self._active(slug, tier)
        if entry.rental_cost_per_day is None:
            raise UnknownService(f"{slug!r} can not be rented")
        day = self._price(entry, entry.rental_cost_per_day, discount)
        return Quote(entry=entry, price=day * days, currency=CURRENCY)

    async def sync(self, provider: SmsProvider, *, progress: Callable[[str], None] | None = None) -> SyncReport:
        """Add the provider's services, refresh their costs, retire those it no longer lists. Our markup and an
        operator's `active = false` survive: only a service the provider lists again comes back."""
        listed = await provider.list_services(ReservationKind.VERIFICATION)
        rentable = {s.name for s in await provider.list_services(ReservationKind.RENTAL)}
        shortest = min(provider.rental_days) if provider.rental_days else None
        existing = {e.provider_service: e for e in await self._all_of(provider.name)}
        taken = set((await self.repository.session.scalars(select(CatalogEntry.slug))).all())
        now, added, updated = datetime.now(UTC), 0, 0
        for service in listed:
            cost = await provider.verification_price(service.name)
            self.rates.rate(cost.currency)  # no rate for it: refuse now rather than fail every later price
            per_day: Decimal | None = None
            if shortest is not None and service.name in rentable:
                per_day = (await provider.rental_price(service.name, shortest)).amount / shortest
            entry = existing.pop(service.name, None)
            if entry is None:
                slug = _unique(slug_of(service.name), taken)
                entry = CatalogEntry(slug=slug, name=service.name, provider=provider.name)
                entry.provider_service = service.name
                self.repository.session.add(entry)
                added += 1
            else:
                updated += 1
            entry.cost, entry.cost_currency, entry.rental_cost_per_day, entry.synced_at = (
                cost.amount,
                cost.currency,
                per_day,
                now,
            )
            if progress is not None:
                progress(service.name)
        for gone in existing.values():
            gone.active = False
        await self.repository.session.flush()
        return SyncReport(added=added, updated=updated, deactivated=len(existing))

    async def _all_of(self, provider: str) -> Sequence[CatalogEntry]:
        query = select(CatalogEntry).where(CatalogEntry.provider == provider)
        return (await self.repository.session.scalars(query)).all()

    def _read(self, entry: CatalogEntry, discount_bps: int) -> ServiceRead:
        per_day = entry.rental_cost_per_day
        return ServiceRead(
            slug=entry.slug,
            name=entry.name,
            price=self._price(entry, entry.cost, discount_bps),
            currency=CURRENCY,
            rental_price_per_day=None if per_day is None else self._price(entry, per_day, discount_bps),
        )

    async def _active(self, slug: str, tier: str) -> tuple[CatalogEntry, int]:
        """The service for sale and the tier's discount, in one round trip: every purchase starts here."""
        row = (await self.repository.session.execute(_ACTIVE_WITH_DISCOUNT, {"slug": slug, "tier": tier})).first()
        if row is None:
            raise UnknownService(f"No service {slug!r} is for sale")
        return row[0], row[1] or 0

    async def _discount(self, tier: str) -> int:
        discount = await self.repository.session.scalar(select(TierPlan.discount_bps).where(TierPlan.name == tier))
        return discount or 0

    def _price(self, entry: CatalogEntry, cost: Decimal, discount_bps: int) -> int:
        return price_minor(
            cost, entry.cost_currency, markup_bps=entry.markup_bps, discount_bps=discount_bps, rates=self.rates
        )
