"""Bodies of the wallet routes and of the operator credit grant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.wallet.models import DESCRIPTION_MAX, LedgerEntry, LedgerTransaction

# The most one grant may add: ten million naira, in kobo. A typo of a few zeros should fail, not pay out.
MAX_GRANT = 1_000_000_000


class WalletRead(msgspec.Struct, frozen=True):
    balance: int
    currency: str


class WalletTransaction(msgspec.Struct, frozen=True):
    """One entry of the wallet: `amount` is signed from the wallet's side (a purchase is negative)."""

    id: uuid.UUID
    amount: int
    currency: str
    balance_after: int
    kind: str
    reference: str
    created_at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry, transaction: LedgerTransaction) -> WalletTransaction:
        return cls(
            id=entry.id,
            amount=entry.amount,
            currency=transaction.currency,
            # Wallet entries always carry it; only system accounts' entries leave it empty.
            balance_after=entry.balance_after or 0,
            kind=transaction.kind,
            reference=transaction.reference,
            created_at=entry.created_at,
        )


class WalletTransactionList(msgspec.Struct, frozen=True):
    items: list[WalletTransaction]
    total: int


class CreditGrant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An operator's grant: whole minor units, positive and bounded, with a reason that is not just blanks."""

    amount: Annotated[int, msgspec.Meta(gt=0, le=MAX_GRANT)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=DESCRIPTION_MAX, pattern=r"\S")]


class CreditGranted(msgspec.Struct, frozen=True):
    """The wallet's entry the grant booked."""

    id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    balance_after: int
    kind: str
    reference: str
    reason: str
    created_at: datetime
