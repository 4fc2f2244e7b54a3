"""Billing tables: top-ups, Paystack's events as received, flags for operators, and the sandbox's transactions."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7AuditBase, UUIDv7Base, utcnow

REFERENCE_MAX = 100  # Paystack's references; ours are `tu_` + 32 characters


class TopupStatus(StrEnum):
    INITIALIZING = "initializing"  # our row is committed; Paystack's initialize has not answered yet
    PENDING = "pending"  # Paystack gave the checkout URL; waiting for the customer to pay
    SUCCESS = "success"  # Paystack reported success with our amount and currency: credited, once
    FAILED = "failed"  # initialize failed, or Paystack reported a failed charge (a later success still credits)
    MISMATCH = "mismatch"  # Paystack reported success with another amount or currency: nothing credited, flagged


# A success may still be booked from these (the customer can retry a failed charge on the same checkout).
CREDITABLE = (TopupStatus.INITIALIZING.value, TopupStatus.PENDING.value, TopupStatus.FAILED.value)
_STATUSES = ", ".join(f"'{s.value}'" for s in TopupStatus)


class Topup(UUIDv7AuditBase):
    """One attempt to buy credits through Paystack, under our unguessable `reference`. `amount` is what the wallet
    is credited, `charged_amount` what Paystack charges (amount plus tax when TAX_MODE is exclusive and TAX_POINT
    payment; else the same) and must report paid; `tax_*` the quote at checkout, which the invoice keeps. `paid_*`
    keep what Paystack reported; `refunded_amount` and `frozen_amount` the credits refunds and open disputes took
    back out of the wallet."""

    __tablename__ = "topups"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("charged_amount >= amount AND tax_amount >= 0", name="charged_covers_credit"),
        Index("ix_topups_user_id_created_at", "user_id", "created_at"),
    )

    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Migration 0022; earlier top-ups were charged their amount and have no quote (their invoice takes today's rate).
    charged_amount: Mapped[int] = mapped_column(BigInteger)
    tax_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tax_point: Mapped[str | None] = mapped_column(String(8), default=None)
    tax_mode: Mapped[str | None] = mapped_column(String(10), default=None)
    tax_country: Mapped[str | None] = mapped_column(String(2), default=None)
    tax_name: Mapped[str | None] = mapped_column(String(40), default=None)
    tax_rate_bps: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(16), default=TopupStatus.INITIALIZING.value)
    authorization_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    access_code: Mapped[str | None] = mapped_column(String(100), default=None)
    paystack_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    paid_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    paid_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    paid_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    settled_by: Mapped[str | None] = mapped_column(String(16), default=None)  # "webhook" or "verify"
    failure: Mapped[str | None] = mapped_column(String(200), default=None)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    frozen_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    flagged_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class EventStatus(StrEnum):
    PENDING = "pending"  # stored and acknowledged; its job has not run yet
    PROCESSED = "processed"  # money moved (or was already moved) as the event says
    IGNORED = "ignored"  # nothing of ours changes (unknown type, not our reference, a non-success charge)
    FLAGGED = "flagged"  # it could not be applied as sent; a billing flag tells operators why


_EVENT_STATUSES = ", ".join(f"'{s.value}'" for s in EventStatus)


class PaystackEvent(UUIDv7Base):
    """A webhook as Paystack sent it, stored once under `event_key` (see events.event_key): Paystack retries for
    72 hours until it gets a 200, so the same event arrives many times and must change things once."""

    __tablename__ = "paystack_events"
    __table_args__ = (CheckConstraint(f"status IN ({_EVENT_STATUSES})", name="status_known"),)

    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB)
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.PENDING.value)
    detail: Mapped[str | None] = mapped_column(String(200), default=None)
    source_ip: Mapped[str | None] = mapped_column(String(45), default=None)
    received_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class FlagKind(StrEnum):
    MISMATCH = "mismatch"  # success reported with another amount or currency
    REFUND_SHORTFALL = "refund_shortfall"  # refunded at Paystack, but the wallet held less than the refund
    REFUND_UNCREDITED = "refund_uncredited"  # a refund of a top-up we never credited
    DISPUTE = "dispute"  # a chargeback was opened: the credits are frozen until it is resolved
    DISPUTE_SHORTFALL = "dispute_shortfall"  # the wallet held less than the disputed amount
    DISPUTE_LOST = "dispute_lost"  # resolved for the customer: the frozen credits stay out of the wallet
    UNKNOWN_REFERENCE = "unknown_reference"  # money moved at Paystack under a reference that is none of ours
    BAD_EVENT = "bad_event"  # a signed event whose data we could not read (a missing or non-integer amount)
    CREDIT_NOTE_MISSING = "credit_note_missing"  # money given back with no invoice to credit, or none of it left


class BillingFlag(UUIDv7Base):
    """Something about money an operator must look at. `key` makes raising it idempotent (a job may run twice)."""

    __tablename__ = "billing_flags"

    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    topup_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("topups.id"), default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id"), default=None)
    reference: Mapped[str | None] = mapped_column(String(REFERENCE_MAX), default=None)
    amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    detail: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class SandboxTransaction(UUIDv7Base):
    """A transaction of the embedded Paystack (dev mode): what Paystack itself would hold, kept in our database so
    every process (API, worker) sees the same state. `paystack_id` plays Paystack's integer transaction id."""

    __tablename__ = "paystack_sandbox_transactions"

    paystack_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    reference: Mapped[str] = mapped_column(String(REFERENCE_MAX), unique=True)
    access_code: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str] = mapped_column(String(320))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonB, default=None)
    callback_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    status: Mapped[str] = mapped_column(String(16), default="abandoned")  # Paystack's word for "not paid yet"
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
