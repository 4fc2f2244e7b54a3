"""TextVerified API v2 wire shapes, named and spelled as in its OpenAPI document (only the fields we use)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

# Enumerations of the document we send (NumberType, ReservationCapability, ReservationType, RentalDuration).
NumberType = Literal["mobile", "voip", "landline"]
Capability = Literal["sms", "voice", "smsAndVoiceCombo"]
ReservationType = Literal["renewable", "nonrenewable", "verification"]
RentalDuration = Literal["oneDay", "threeDay", "sevenDay", "fourteenDay", "thirtyDay", "ninetyDay", "oneYear"]


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, frozen=True):
    """camelCase on the wire; optional request fields left out rather than sent as null."""


class BearerToken(_Wire, frozen=True):
    token: str
    expires_in: float
    expires_at: datetime


class Link(_Wire, frozen=True):
    href: str | None = None
    method: str | None = None


class Error(_Wire, frozen=True):
    error_code: str | None = None
    error_description: str | None = None


class Service(_Wire, frozen=True):
    service_name: str
    capability: str


class VerificationPriceCheckRequest(_Wire, frozen=True):
    service_name: str
    area_code: bool
    carrier: bool
    number_type: NumberType
    capability: Capability


class RentalPriceCheckRequest(_Wire, frozen=True):
    service_name: str
    area_code: bool
    number_type: NumberType
    capability: Capability
    is_renewable: bool
    duration: RentalDuration


class PricingSnapshot(_Wire, frozen=True):
    service_name: str
    price: Decimal


class NewVerificationRequest(_Wire, frozen=True):
    service_name: str
    capability: Capability
    area_code_select_option: list[str] | None = None
    carrier_select_option: list[str] | None = None
    max_price: Decimal | None = None


class NewRentalRequest(_Wire, frozen=True):
    allow_back_order_reservations: bool
    duration: RentalDuration
    is_renewable: bool
    number_type: NumberType
    service_name: str
    capability: Capability
    area_code_select_option: list[str] | None = None


class VerificationExpanded(_Wire, frozen=True):
    id: str
    number: str
    service_name: str
    state: str
    created_at: datetime
    ends_at: datetime
    total_cost: Decimal


class Reservation(_Wire, frozen=True):
    id: str
    link: Link
    reservation_type: str
    service_name: str


class ReservationSaleExpanded(_Wire, frozen=True):
    id: str
    state: str  # created, processing, failed, succeeded
    total: Decimal
    reservations: list[Reservation]
    created_at: datetime


class NonrenewableRentalExpanded(_Wire, frozen=True):
    id: str
    number: str
    service_name: str
    state: str
    created_at: datetime
    ends_at: datetime


class RentalExtensionRequest(_Wire, frozen=True):
    extension_duration: RentalDuration
    rental_id: str


class RentalExtension(_Wire, frozen=True):
    id: str
    reservation_id: str
    cost: Decimal
    new_ends_at: datetime


class Sms(_Wire, frozen=True):
    id: str
    to: str
    created_at: datetime
    from_: str | None = msgspec.field(default=None, name="from")
    sms_content: str | None = None
    parsed_code: str | None = None


class PaginationLinks(_Wire, frozen=True):
    next: Link | None = None


class PaginatedSms(_Wire, frozen=True):
    data: list[Sms]
    has_next: bool
    links: PaginationLinks | None = None


encoder = msgspec.json.Encoder(decimal_format="number")  # the document's prices are JSON numbers, not strings
