"""Bodies of the catalog routes and the quotes other areas buy at."""

from __future__ import annotations

import msgspec

from namaskah.domain.catalog.models import CatalogEntry


class ServiceRead(msgspec.Struct, frozen=True):
    """Prices in minor units of `currency`, for the caller's tier; `rental_price_per_day` is null when the service
    can not be rented."""

    slug: str
    name: str
    price: int
    currency: str
    rental_price_per_day: int | None


class ServiceList(msgspec.Struct, frozen=True):
    items: list[ServiceRead]


class Quote(msgspec.Struct, frozen=True):
    """What one purchase of `entry` costs a tier, computed once and charged as computed."""

    entry: CatalogEntry
    price: int
    currency: str


class SyncReport(msgspec.Struct, frozen=True):
    added: int
    updated: int
    deactivated: int
