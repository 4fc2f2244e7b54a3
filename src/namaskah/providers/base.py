"""The provider-neutral contract: what every upstream number provider offers, and the values it hands back."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import msgspec


class ReservationKind(StrEnum):
    """A verification is one number for one code; a rental keeps a number for days."""

    VERIFICATION = "verification"
    RENTAL = "rental"


class ProviderState(StrEnum):
    """Where a provider's reservation stands, in our words (each adapter maps its vendor's states onto these)."""

    PENDING = "pending"  # verification waiting for its SMS
    COMPLETED = "completed"  # verification received its SMS
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    REPORTED = "reported"
    REFUNDED = "refunded"
    REUSED = "reused"
    REACTIVATED = "reactivated"
    ACTIVE = "active"  # rental in its paid period
    OVERDUE = "overdue"
    EXPIRED = "expired"


class ProviderPrice(msgspec.Struct, frozen=True, kw_only=True):
    """An amount in the provider's own currency, exact: a vendor's decimal price never passes through a float.

    Turning it into credits (integer minor units of our currency) is the catalog's business, not the adapter's."""

    amount: Decimal
    currency: str


class ProviderService(msgspec.Struct, frozen=True, kw_only=True):
    """A service (WhatsApp, Telegram, ...) the provider can give numbers for, by the provider's name for it.

    Prices are asked per service and options (`verification_price`, `rental_price`): vendors price by option and
    do not list prices with their services."""

    name: str
    kind: ReservationKind


class ProviderNumber(msgspec.Struct, frozen=True, kw_only=True):
    """A number the provider reserved for us: for one verification, or rented for days."""

    provider_id: str
    kind: ReservationKind
    service: str
    phone_number: str
    state: ProviderState
    created_at: datetime
    expires_at: datetime | None  # when the provider stops delivering to it
    cost: ProviderPrice | None = None  # what the provider charged us, when it says


class ProviderMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One SMS received on a reserved number."""

    provider_id: str
    text: str  # empty when the provider withholds the content
    code: str | None  # the code the provider parsed out of the text, if any
    received_at: datetime
    sender: str | None = None


class ProviderExtension(msgspec.Struct, frozen=True, kw_only=True):
    """A rental's new end after an extension, and what the extension cost us."""

    provider_id: str
    expires_at: datetime
    cost: ProviderPrice


class SmsProvider(Protocol):
    """One upstream number provider. Every method raises a `ProviderError` subclass when the provider says no or
    can not be reached (see `namaskah.providers.errors`); none returns a partial answer. A blank idempotency key is
    a ValueError: a bug of the caller, not an answer of the provider.

    Creates (`acquire`, `rent`) take the caller's idempotency key: the caller derives it from its own record (the
    verification or rental row) so that a job running twice, or a retry after a timeout, buys one number, not two.
    """

    @property
    def name(self) -> str:
        """A stable short name for logs and stored rows ("textverified")."""
        ...

    @property
    def rental_days(self) -> frozenset[int]:
        """The rental and extension lengths, in days, the provider sells; others raise ProviderUnsupportedOption."""
        ...

    async def list_services(self, kind: ReservationKind) -> list[ProviderService]: ...

    async def verification_price(
        self, service: str, *, area_code: bool = False, carrier: bool = False
    ) -> ProviderPrice: ...

    async def rental_price(self, service: str, days: int, *, area_code: bool = False) -> ProviderPrice: ...

    async def acquire(
        self,
        service: str,
        *,
        idempotency_key: str,
        area_code: str | None = None,
        carrier: str | None = None,
        max_price: Decimal | None = None,
    ) -> ProviderNumber:
        """Buy a number for one verification of `service`; `max_price` refuses a dearer one (ProviderPriceExceeded)."""
        ...

    async def get_verification(self, provider_id: str) -> ProviderNumber: ...

    async def messages(self, provider_id: str, kind: ReservationKind) -> list[ProviderMessage]:
        """Every SMS received so far on a verification's or a rental's number (polling fallback of push events)."""
        ...

    async def cancel(self, provider_id: str) -> None:
        """Cancel a verification that received nothing; ProviderRejected when the provider no longer allows it."""
        ...

    async def report(self, provider_id: str) -> None:
        """Report a verification whose number did not work (already used, no code)."""
        ...

    async def rent(
        self, service: str, days: int, *, idempotency_key: str, area_code: str | None = None
    ) -> ProviderNumber: ...

    async def get_rental(self, provider_id: str) -> ProviderNumber: ...

    async def extend(self, provider_id: str, days: int) -> ProviderExtension:
        """Extend a rental. Not repeated after an unclear failure (it is charged twice): on ProviderUnavailable,
        read `get_rental` to see whether the end moved before trying again."""
        ...

    async def release(self, provider_id: str) -> None:
        """Give a rental back early, asking for a refund; ProviderRejected when the provider refuses (the number
        then simply runs out at `expires_at`)."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections; call once at shutdown."""
        ...
