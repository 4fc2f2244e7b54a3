"""Bodies and answers of the verification routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.verifications.models import Verification, VerificationMessage
from namaskah.lib.idempotency import fingerprint

Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
AreaCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{3}$")]
Carrier = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class VerificationCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    service: Slug
    area_code: AreaCode | None = None
    carrier: Carrier | None = None

    def fingerprint(self) -> str:
        return fingerprint(self.service, self.area_code, self.carrier)


class MessageRead(msgspec.Struct, frozen=True):
    text: str
    code: str | None
    received_at: datetime


class VerificationRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    service: str
    status: str
    phone_number: str | None
    price: int
    currency: str
    code: str | None
    messages: list[MessageRead]
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, verification: Verification, messages: list[VerificationMessage]) -> VerificationRead:
        # The code shown is the first one received: the one that completed the verification.
        code = next((m.code for m in messages if m.code), None)
        return cls(
            id=verification.id,
            service=verification.service,
            status=verification.status,
            phone_number=verification.phone_number,
            price=verification.price,
            currency=verification.currency,
            code=code,
            messages=[MessageRead(text=m.text, code=m.code, received_at=m.received_at) for m in messages],
            created_at=verification.created_at,
            expires_at=verification.expires_at,
        )


class VerificationList(msgspec.Struct, frozen=True):
    items: list[VerificationRead]
    total: int
