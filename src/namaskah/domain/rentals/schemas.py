"""Bodies and answers of the rental routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.rentals.models import Rental, RentalMessage
from namaskah.lib.idempotency import fingerprint

Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
# Whether the provider sells that many days is checked by the service (422 `unsupported_rental_days`).
Days = Annotated[int, msgspec.Meta(ge=1, le=366)]


class RentalCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    service: Slug
    days: Days
    auto_renew: bool = False

    def fingerprint(self) -> str:
        return fingerprint(self.service, self.days, self.auto_renew)


class RentalExtend(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    days: Days


class RentalRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    service: str
    status: str
    phone_number: str | None
    price: int
    currency: str
    starts_at: datetime
    ends_at: datetime

    @classmethod
    def of(cls, rental: Rental) -> RentalRead:
        return cls(
            id=rental.id,
            service=rental.service,
            status=rental.status,
            phone_number=rental.phone_number,
            price=rental.price,
            currency=rental.currency,
            starts_at=rental.starts_at,
            ends_at=rental.ends_at,
        )


class RentalList(msgspec.Struct, frozen=True):
    items: list[RentalRead]
    total: int


class RentalMessageRead(msgspec.Struct, frozen=True):
    text: str
    code: str | None
    received_at: datetime

    @classmethod
    def of(cls, message: RentalMessage) -> RentalMessageRead:
        return cls(text=message.text, code=message.code, received_at=message.received_at)


class RentalMessageList(msgspec.Struct, frozen=True):
    items: list[RentalMessageRead]
    total: int
