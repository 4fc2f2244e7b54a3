"""The TextVerified API v2 adapter behind SmsProvider: verifications and non-renewable rentals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import msgspec

from namaskah.lib.logging import get_logger
from namaskah.providers.base import (
    ProviderExtension,
    ProviderMessage,
    ProviderNumber,
    ProviderPrice,
    ProviderService,
    ProviderState,
    ReservationKind,
    SmsProvider,
)
from namaskah.providers.errors import (
    ProviderBadResponse,
    ProviderRejected,
    ProviderUnavailable,
    ProviderUnsupportedOption,
)
from namaskah.providers.textverified_client import TextVerifiedClient, decode
from namaskah.providers.textverified_schemas import (
    NewRentalRequest,
    NewVerificationRequest,
    NonrenewableRentalExpanded,
    PaginatedSms,
    PricingSnapshot,
    RentalDuration,
    RentalExtension,
    RentalExtensionRequest,
    RentalPriceCheckRequest,
    ReservationSaleExpanded,
    ReservationType,
    Service,
    Sms,
    VerificationExpanded,
    VerificationPriceCheckRequest,
)
from namaskah.settings import Settings

logger = get_logger(__name__)

API = "/api/pub/v2"
CURRENCY = "USD"  # every TextVerified price and cost
# The document's RentalDuration values, by length in days.
DURATIONS: dict[int, RentalDuration] = {
    1: "oneDay",
    3: "threeDay",
    7: "sevenDay",
    14: "fourteenDay",
    30: "thirtyDay",
    90: "ninetyDay",
    365: "oneYear",
}
# Rentals are non-renewable: a renewable one joins a billing cycle that renews (and charges) on its own, which
# our prepaid credits can not follow. Extensions exist for non-renewable rentals only.
_RENTAL_TYPE: ReservationType = "nonrenewable"
_RESERVATION_TYPES: dict[ReservationKind, ReservationType] = {
    ReservationKind.VERIFICATION: "verification",
    ReservationKind.RENTAL: _RENTAL_TYPE,
}
_STATES = {
    "verificationPending": ProviderState.PENDING,
    "verificationCompleted": ProviderState.COMPLETED,
    "verificationCanceled": ProviderState.CANCELLED,
    "verificationTimedOut": ProviderState.TIMED_OUT,
    "verificationReported": ProviderState.REPORTED,
    "verificationRefunded": ProviderState.REFUNDED,
    "verificationReused": ProviderState.REUSED,
    "verificationReactivated": ProviderState.REACTIVATED,
    "renewableActive": ProviderState.ACTIVE,
    "renewableOverdue": ProviderState.OVERDUE,
    "renewableExpired": ProviderState.EXPIRED,
    "renewableRefunded": ProviderState.REFUNDED,
    "nonrenewableActive": ProviderState.ACTIVE,
    "nonrenewableExpired": ProviderState.EXPIRED,
    "nonrenewableRefunded": ProviderState.REFUNDED,
}
_SMS_CAPABLE = frozenset({"sms", "smsAndVoiceCombo"})
_SALE_POLLS = 5  # a sale is usually done when its Location is followed; a few short waits cover the rest
_MAX_SMS_PAGES = 20  # a runaway `next` link must not keep a job busy forever


class TextVerifiedProvider:
    """SmsProvider over TextVerified API v2; numbers are US mobile numbers receiving SMS."""

    name = "textverified"
    rental_days = frozenset(DURATIONS)

    def __init__(self, http: TextVerifiedClient) -> None:
        self._http = http

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> TextVerifiedProvider:
        """Build on one pooled client; `transport` (and sleep/clock/rng in `options`) are for tests."""
        return cls(TextVerifiedClient.from_settings(settings, transport=transport, **options))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> TextVerifiedProvider:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # --- catalog --------------------------------------------------------------------------------------------

    async def list_services(self, kind: ReservationKind) -> list[ProviderService]:
        response = await self._http.call(
            "GET",
            f"{API}/services",
            params={"numberType": "mobile", "reservationType": _RESERVATION_TYPES[kind]},
            expect=200,
            operation="list services",
        )
        services = decode(response, list[Service], "service list")
        return [ProviderService(name=s.service_name, kind=kind) for s in services if s.capability in _SMS_CAPABLE]

    async def verification_price(
        self, service: str, *, area_code: bool = False, carrier: bool = False
    ) -> ProviderPrice:
        body = VerificationPriceCheckRequest(
            service_name=service, area_code=area_code, carrier=carrier, number_type="mobile", capability="sms"
        )
        response = await self._http.call(
            "POST", f"{API}/pricing/verifications", body=body, expect=200, operation="price a verification"
        )
        return _price(decode(response, PricingSnapshot, "price").price)

    async def rental_price(self, service: str, days: int, *, area_code: bool = False) -> ProviderPrice:
        body = RentalPriceCheckRequest(
            service_name=service,
            area_code=area_code,
            number_type="mobile",
            capability="sms",
            is_renewable=False,
            duration=_duration(days),
        )
        response = await self._http.call(
            "POST", f"{API}/pricing/rentals", body=body, expect=200, operation="price a rental"
        )
        return _price(decode(response, PricingSnapshot, "price").price)

    # --- verifications --------------------------------------------------------------------------------------

    async def acquire(
        self,
        service: str,
        *,
        idempotency_key: str,
        area_code: str | None = None,
        carrier: str | None = None,
        max_price: Decimal | None = None,
    ) -> ProviderNumber:
        body = NewVerificationRequest(
            service_name=service,
            capability="sms",
            area_code_select_option=[area_code] if area_code else None,
            carrier_select_option=[carrier] if carrier else None,
            max_price=max_price,
        )
        # The key makes a repeat (ours after a timeout, or a job's second run) answer with the first purchase.
        created = await self._http.call(
            "POST",
            f"{API}/verifications",
            body=body,
            headers={"Idempotency-Key": _idempotency_key(idempotency_key)},
            expect=201,
            operation="create a verification",
        )
        location = self._http.location(created, "create a verification")
        return await self._verification_at(location)

    async def get_verification(self, provider_id: str) -> ProviderNumber:
        return await self._verification_at(f"{API}/verifications/{_segment(provider_id)}")

    async def _verification_at(self, url: str | httpx.URL) -> ProviderNumber:
        response = await self._http.call("GET", url, expect=200, operation="read a verification")
        found = decode(response, VerificationExpanded, "verification")
        return ProviderNumber(
            provider_id=found.id,
            kind=ReservationKind.VERIFICATION,
            service=found.service_name,
            phone_number=found.number,
            state=_state(found.state),
            created_at=_utc(found.created_at),
            expires_at=_utc(found.ends_at),
            cost=_price(found.total_cost),
        )

    async def cancel(self, provider_id: str) -> None:
        await self._http.call(
            "POST", f"{API}/verifications/{_segment(provider_id)}/cancel", expect=200, operation="cancel"
        )

    async def report(self, provider_id: str) -> None:
        await self._http.call(
            "POST", f"{API}/verifications/{_segment(provider_id)}/report", expect=200, operation="report"
        )

    async def messages(self, provider_id: str, kind: ReservationKind) -> list[ProviderMessage]:
        url: str | httpx.URL = f"{API}/sms"
        params: dict[str, str] | None = {"reservationId": provider_id, "reservationType": _RESERVATION_TYPES[kind]}
        seen: dict[str, Sms] = {}
        for _ in range(_MAX_SMS_PAGES):
            response = await self._http.call("GET", url, params=params, expect=200, operation="list SMS")
            page = decode(response, PaginatedSms, "SMS list")
            for sms in page.data:
                seen.setdefault(sms.id, sms)  # a page may repeat one when new SMS arrive while paging
            following = page.links.next.href if page.has_next and page.links and page.links.next else None
            if not following:
                break
            url, params = self._http.resolve(following), None  # the link carries its own query
        else:
            logger.warning("textverified_sms_pages_capped", pages=_MAX_SMS_PAGES)
        found = [message_of(sms) for sms in seen.values()]
        return sorted(found, key=lambda m: m.received_at)

    # --- rentals --------------------------------------------------------------------------------------------

    async def rent(
        self, service: str, days: int, *, idempotency_key: str, area_code: str | None = None
    ) -> ProviderNumber:
        body = NewRentalRequest(
            allow_back_order_reservations=False,  # a backorder is a number some day; we sell one now
            duration=_duration(days),
            is_renewable=False,
            number_type="mobile",
            service_name=service,
            capability="sms",
            area_code_select_option=[area_code] if area_code else None,
        )
        created = await self._http.call(
            "POST",
            f"{API}/reservations/rental",
            body=body,
            headers={"Idempotency-Key": _idempotency_key(idempotency_key)},
            expect=201,
            operation="create a rental",
        )
        sale = await self._finished_sale(self._http.location(created, "create a rental"))
        rental = next((r for r in sale.reservations if r.reservation_type == _RENTAL_TYPE), None)
        if rental is None:
            logger.error("textverified_sale_without_rental", sale_id=sale.id)
            raise ProviderBadResponse("The number provider's sale holds no rental.")
        href = rental.link.href or f"{API}/reservations/rental/nonrenewable/{_segment(rental.id)}"
        number = await self._rental_at(self._http.resolve(href))
        return msgspec.structs.replace(number, cost=_price(sale.total))

    async def _finished_sale(self, url: httpx.URL) -> ReservationSaleExpanded:
        for attempt in range(_SALE_POLLS):
            response = await self._http.call("GET", url, expect=200, operation="read a sale")
            sale = decode(response, ReservationSaleExpanded, "sale")
            if sale.state == "succeeded":
                return sale
            if sale.state == "failed":
                raise ProviderRejected("The number provider could not complete the rental.")
            await self._http.pause(attempt)
        # Repeating `rent` with the same idempotency key finds this very sale again.
        raise ProviderUnavailable("The number provider is still processing the rental; try again shortly.")

    async def get_rental(self, provider_id: str) -> ProviderNumber:
        return await self._rental_at(f"{API}/reservations/rental/nonrenewable/{_segment(provider_id)}")

    async def _rental_at(self, url: str | httpx.URL) -> ProviderNumber:
        response = await self._http.call("GET", url, expect=200, operation="read a rental")
        found = decode(response, NonrenewableRentalExpanded, "rental")
        return ProviderNumber(
            provider_id=found.id,
            kind=ReservationKind.RENTAL,
            service=found.service_name,
            phone_number=found.number,
            state=_state(found.state),
            created_at=_utc(found.created_at),
            expires_at=_utc(found.ends_at),
        )

    async def extend(self, provider_id: str, days: int) -> ProviderExtension:
        body = RentalExtensionRequest(extension_duration=_duration(days), rental_id=provider_id)
        # Not repeatable: the document gives extensions no idempotency key, and they are charged and final.
        response = await self._http.call(
            "POST",
            f"{API}/reservations/rentals/extensions",
            body=body,
            expect=200,
            operation="extend a rental",
            repeatable=False,
        )
        extension = decode(response, RentalExtension, "extension")
        return ProviderExtension(
            provider_id=extension.reservation_id, expires_at=_utc(extension.new_ends_at), cost=_price(extension.cost)
        )

    async def release(self, provider_id: str) -> None:
        # TextVerified has no early return other than its self-service refund.
        await self._http.call(
            "POST",
            f"{API}/reservations/rental/nonrenewable/{_segment(provider_id)}/refund",
            expect=200,
            operation="refund a rental",
        )


def _duration(days: int) -> RentalDuration:
    try:
        return DURATIONS[days]
    except KeyError:
        offered = ", ".join(str(d) for d in DURATIONS)
        raise ProviderUnsupportedOption(f"Rentals last {offered} days; {days} is not offered.") from None


def _idempotency_key(key: str) -> str:
    # The document: keys are trimmed and must be 1 to 256 characters.
    trimmed = key.strip()
    if not 1 <= len(trimmed) <= 256:
        raise ValueError("an idempotency key must be 1 to 256 characters")
    return trimmed


def _segment(provider_id: str) -> str:
    """An id as one path segment: an id with a slash or dots can not reach another endpoint."""
    return quote(provider_id, safe="")


def _state(vendor_state: str) -> ProviderState:
    try:
        return _STATES[vendor_state]
    except KeyError:
        logger.error("textverified_unknown_state", state=vendor_state)
        raise ProviderBadResponse("The number provider reported an unknown reservation state.") from None


def _price(amount: Decimal) -> ProviderPrice:
    return ProviderPrice(amount=amount, currency=CURRENCY)


def _utc(moment: datetime) -> datetime:
    # The document's date-times carry an offset; one without is read as UTC, never as local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def message_of(sms: Sms) -> ProviderMessage:
    return ProviderMessage(
        provider_id=sms.id,
        text=sms.sms_content or "",
        code=sms.parsed_code or None,
        received_at=_utc(sms.created_at),
        sender=sms.from_,
    )


if TYPE_CHECKING:
    # mypy proves here that the adapter satisfies the protocol the domain codes against.
    def _conforms(adapter: TextVerifiedProvider) -> SmsProvider:
        return adapter
