"""The embedded default provider: a fixed list of services priced in USD, for dev mode and tests.

Selling numbers (verifications, rentals) and delivering messages through `POST /v1/dev/simulator/messages` come
with the verifications area; until then those methods raise ProviderUnavailable with a clear detail.
"""

from __future__ import annotations

from decimal import Decimal

from namaskah.providers.base import (
    ProviderExtension,
    ProviderMessage,
    ProviderNumber,
    ProviderPrice,
    ProviderService,
    ReservationKind,
)
from namaskah.providers.errors import ProviderNotFound, ProviderUnavailable

# Service name: (verification price, rental price per day or None when it can not be rented), in USD.
SERVICES: dict[str, tuple[Decimal, Decimal | None]] = {
    "WhatsApp": (Decimal("0.75"), Decimal("0.50")),
    "Telegram": (Decimal("0.60"), Decimal("0.45")),
    "Google": (Decimal("0.50"), Decimal("0.40")),
    "Facebook": (Decimal("0.40"), None),
    "Instagram": (Decimal("0.45"), None),
    "Uber": (Decimal("0.35"), Decimal("0.30")),
    "Discord": (Decimal("0.30"), None),
    "TikTok": (Decimal("0.55"), None),
}
NOT_YET = "The simulator does not sell numbers yet: verifications and rentals come with the verifications area"


class SimulatorProvider:
    name = "simulator"
    rental_days = frozenset({1, 7, 14, 30})

    async def list_services(self, kind: ReservationKind) -> list[ProviderService]:
        rentable = kind is ReservationKind.RENTAL
        return [ProviderService(name=name, kind=kind) for name, (_, day) in SERVICES.items() if not rentable or day]

    async def verification_price(
        self, service: str, *, area_code: bool = False, carrier: bool = False
    ) -> ProviderPrice:
        return ProviderPrice(amount=self._prices(service)[0], currency="USD")

    async def rental_price(self, service: str, days: int, *, area_code: bool = False) -> ProviderPrice:
        per_day = self._prices(service)[1]
        if per_day is None:
            raise ProviderNotFound(f"{service} can not be rented")
        return ProviderPrice(amount=per_day * days, currency="USD")

    async def acquire(
        self,
        service: str,
        *,
        idempotency_key: str,
        area_code: str | None = None,
        carrier: str | None = None,
        max_price: Decimal | None = None,
    ) -> ProviderNumber:
        raise ProviderUnavailable(NOT_YET)

    async def get_verification(self, provider_id: str) -> ProviderNumber:
        raise ProviderUnavailable(NOT_YET)

    async def messages(self, provider_id: str, kind: ReservationKind) -> list[ProviderMessage]:
        raise ProviderUnavailable(NOT_YET)

    async def cancel(self, provider_id: str) -> None:
        raise ProviderUnavailable(NOT_YET)

    async def report(self, provider_id: str) -> None:
        raise ProviderUnavailable(NOT_YET)

    async def rent(
        self, service: str, days: int, *, idempotency_key: str, area_code: str | None = None
    ) -> ProviderNumber:
        raise ProviderUnavailable(NOT_YET)

    async def get_rental(self, provider_id: str) -> ProviderNumber:
        raise ProviderUnavailable(NOT_YET)

    async def extend(self, provider_id: str, days: int) -> ProviderExtension:
        raise ProviderUnavailable(NOT_YET)

    async def release(self, provider_id: str) -> None:
        raise ProviderUnavailable(NOT_YET)

    async def aclose(self) -> None:
        return None

    def _prices(self, service: str) -> tuple[Decimal, Decimal | None]:
        if service not in SERVICES:
            raise ProviderNotFound(f"The simulator has no service {service!r}")
        return SERVICES[service]
