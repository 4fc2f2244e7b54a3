"""The double-entry ledger: accounts (one wallet per user, plus system accounts), transactions and their entries."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase, UUIDv7Base, utcnow
from namaskah.lib.money import CURRENCY


class EntryKind(StrEnum):
    """What a transaction was for; the wallet's history shows it."""

    PURCHASE = "purchase"
    REFUND = "refund"
    GRANT = "grant"
    TOPUP = "topup"
    RENTAL = "rental"
    RENTAL_REFUND = "rental_refund"
    TOPUP_REFUND = "topup_refund"  # Paystack refunded a top-up to the card: the credits go back out
    DISPUTE_FREEZE = "dispute_freeze"  # a chargeback is open on a top-up: its credits are held
    DISPUTE_RELEASE = "dispute_release"  # the chargeback was decided for us: the held credits come back
    SUBSCRIPTION = "subscription"  # a plan's monthly price, paid from the wallet
    SUBSCRIPTION_CREDIT = "subscription_credit"  # the credit a paid plan includes, granted at each period's start


class SystemAccount(StrEnum):
    """The other side of every wallet movement; seeded by migration 0008 with the ids below."""

    REVENUE = "revenue"
    REFUNDS = "refunds"
    GRANTS = "grants"
    PAYSTACK_CLEARING = "paystack_clearing"
    DISPUTES = "disputes"  # credits held while a chargeback is open (migration 0018)
    SUBSCRIPTIONS = "subscriptions"  # plan prices paid (migration 0020)
    INCLUDED_CREDITS = "included_credits"  # credit given with paid plans (migration 0020)


REFERENCE_MAX = 128
DESCRIPTION_MAX = 500

# Fixed ids, so booking never has to look a system account up (migration 0008 writes the same ones).
SYSTEM_ACCOUNT_IDS: dict[SystemAccount, uuid.UUID] = {
    SystemAccount.REVENUE: uuid.UUID("00000000-0000-7000-8000-000000000001"),
    SystemAccount.REFUNDS: uuid.UUID("00000000-0000-7000-8000-000000000002"),
    SystemAccount.GRANTS: uuid.UUID("00000000-0000-7000-8000-000000000003"),
    SystemAccount.PAYSTACK_CLEARING: uuid.UUID("00000000-0000-7000-8000-000000000004"),
    SystemAccount.DISPUTES: uuid.UUID("00000000-0000-7000-8000-0000000000d1"),
    SystemAccount.SUBSCRIPTIONS: uuid.UUID("00000000-0000-7000-8000-0000000000b1"),
    SystemAccount.INCLUDED_CREDITS: uuid.UUID("00000000-0000-7000-8000-0000000000b2"),
}


class LedgerAccount(UUIDv7AuditBase):
    """A user's wallet (`user_id` set, a cached `balance` that can not go below zero, and the `last_sequence` of
    its entries) or a system account (`code` set, neither cached: its balance is the sum of its entries, because a
    cached one would be a row every purchase in the system locks until it commits)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint(
            "(user_id IS NOT NULL AND code IS NULL AND balance IS NOT NULL AND last_sequence IS NOT NULL)"
            " OR (user_id IS NULL AND code IS NOT NULL AND balance IS NULL AND last_sequence IS NULL)",
            name="wallet_or_system",
        ),
    )

    # No ON DELETE CASCADE: removing a user must not silently remove the history of their money.
    user_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id"), unique=True, default=None)
    code: Mapped[str | None] = mapped_column(String(40), unique=True, default=None)
    currency: Mapped[str] = mapped_column(String(3), default=CURRENCY)
    balance: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_sequence: Mapped[int | None] = mapped_column(BigInteger, default=None)


class LedgerTransaction(UUIDv7Base):
    """One booking: its `reference` is unique, so the same purchase, refund or top-up can not be booked twice."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Why, in words (an operator's grant reason); never shown to the customer.
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class LedgerEntry(UUIDv7Base):
    """One side of a transaction: the entries of a transaction sum to zero. A wallet's entries are numbered by
    `sequence` (1, 2, ... in the order the wallet's row lock let them in) and carry the `balance_after` them;
    system accounts' entries keep neither."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        UniqueConstraint("transaction_id", "account_id"),
        # Also the index of a wallet's history, newest first.
        UniqueConstraint("account_id", "sequence"),
    )

    transaction_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("ledger_transactions.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    sequence: Mapped[int | None] = mapped_column(BigInteger, default=None)
    balance_after: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
