"""Bodies of the billing routes: top-ups, the webhook acknowledgement and the operators' flags."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.billing.models import BillingFlag, Topup


class TopupCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Whole minor units (kobo for NGN); the limits come from TOPUP_MIN_AMOUNT and TOPUP_MAX_AMOUNT."""

    amount: Annotated[int, msgspec.Meta(gt=0, examples=[500_000])]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$", examples=["NGN"])]


class TopupCreated(msgspec.Struct, frozen=True):
    """`amount` is what the wallet is credited; `charged_amount` what the checkout charges (with the tax on top
    under TAX_MODE=exclusive, TAX_POINT=payment; else the same) and `tax_amount` the tax in it (0 for a prepayment
    under TAX_POINT=usage)."""

    reference: str
    authorization_url: str
    amount: int
    currency: str
    status: str
    charged_amount: int
    tax_amount: int
    tax_point: str

    @classmethod
    def of(cls, topup: Topup) -> TopupCreated:
        return cls(
            reference=topup.reference,
            authorization_url=topup.authorization_url or "",
            amount=topup.amount,
            currency=topup.currency,
            status=topup.status,
            charged_amount=topup.charged_amount,
            tax_amount=topup.tax_amount,
            tax_point=topup.tax_point or "payment",
        )


class TopupRead(msgspec.Struct, frozen=True):
    """As TopupCreated: `amount` credited, `charged_amount` charged, `tax_amount` the tax in the charge."""

    reference: str
    status: str
    amount: int
    currency: str
    created_at: datetime
    paid_at: datetime | None
    authorization_url: str | None
    charged_amount: int
    tax_amount: int
    tax_point: str
    failure: str | None

    @classmethod
    def of(cls, topup: Topup) -> TopupRead:
        return cls(
            reference=topup.reference,
            status=topup.status,
            amount=topup.amount,
            currency=topup.currency,
            created_at=topup.created_at,
            paid_at=topup.paid_at,
            authorization_url=topup.authorization_url,
            charged_amount=topup.charged_amount,
            tax_amount=topup.tax_amount,
            tax_point=topup.tax_point or "payment",
            failure=topup.failure,
        )


class WebhookAck(msgspec.Struct, frozen=True):
    """Our 200 to Paystack: it stops retrying on any 200; `duplicate` says we had the event already."""

    received: bool
    duplicate: bool


class FlagRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    kind: str
    reference: str | None
    user_id: uuid.UUID | None
    amount: int | None
    currency: str | None
    detail: str
    created_at: datetime

    @classmethod
    def of(cls, flag: BillingFlag) -> FlagRead:
        return cls(
            id=flag.id,
            kind=flag.kind,
            reference=flag.reference,
            user_id=flag.user_id,
            amount=flag.amount,
            currency=flag.currency,
            detail=flag.detail,
            created_at=flag.created_at,
        )


class FlagList(msgspec.Struct, frozen=True):
    items: list[FlagRead]
    total: int
