"""Issued invoices, their lines, credit notes against them, and the per-year counters their numbers come from.
Migrations 0019 and 0024 make the database refuse any UPDATE or DELETE of an invoice, a line or a credit note (a
trigger, on PostgreSQL and SQLite alike)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from namaskah.db.base import UUIDv7Base

REFERENCE_MAX = 128
DESCRIPTION_MAX = 200
LINES_MAX = 100


class InvoiceKind(StrEnum):
    TOPUP = "topup"
    SUBSCRIPTION = "subscription"


class InvoiceCounter(DefaultBase):
    """The last number issued in a year. Issuing locks the year's row until its transaction ends, so numbers are
    taken one at a time, and a transaction that rolls back gives its number back (a sequence would not)."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


class Invoice(UUIDv7Base):
    """One issued invoice, a snapshot of everything printed on it: seller and buyer as they were, the tax rate
    that applied, and the totals (the sums of the lines)."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint("kind IN ('topup', 'subscription')", name="kind_known"),
        CheckConstraint("tax_mode IN ('inclusive', 'exclusive')", name="tax_mode_known"),
        CheckConstraint("tax_basis IN ('charged', 'on_topups', 'prepayment')", name="tax_basis_known"),
        CheckConstraint("net_total >= 0 AND tax_total >= 0", name="totals_not_negative"),
        CheckConstraint("net_total + tax_total = gross_total", name="totals_add_up"),
        CheckConstraint("sequence > 0", name="sequence_positive"),
        UniqueConstraint("year", "sequence"),
    )

    number: Mapped[str] = mapped_column(String(20), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    # No ON DELETE CASCADE: an invoice outlives any change to the account it was issued to.
    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The payment it documents (a top-up's reference, a subscription period's): one invoice per payment.
    source_reference: Mapped[str] = mapped_column(String(REFERENCE_MAX), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    country: Mapped[str] = mapped_column(String(2))
    tax_mode: Mapped[str] = mapped_column(String(10))
    tax_name: Mapped[str] = mapped_column(String(40))
    tax_rate_bps: Mapped[int] = mapped_column(Integer)
    # `charged` (the rate applies here), or why the tax is 0 here (TaxBasis): charged on the top-ups that paid for
    # it, or a top-up that is a prepayment taxed when used (TAX_POINT). Migration 0022; earlier invoices: charged.
    tax_basis: Mapped[str] = mapped_column(String(16), default="charged", server_default="charged")
    net_total: Mapped[int] = mapped_column(BigInteger)
    tax_total: Mapped[int] = mapped_column(BigInteger)
    gross_total: Mapped[int] = mapped_column(BigInteger)
    seller_name: Mapped[str] = mapped_column(String(200))
    seller_address: Mapped[str] = mapped_column(String(500))
    seller_tax_id: Mapped[str] = mapped_column(String(64))
    buyer_email: Mapped[str] = mapped_column(String(320))
    issued_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))

    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", lazy="selectin", cascade="save-update, merge"
    )


class InvoiceLine(UUIDv7Base):
    """`unit_amount` is what the payer was quoted per unit (gross when the invoice's tax mode is inclusive, net
    when exclusive); net, tax and gross are the line's, for `quantity` units."""

    __tablename__ = "invoice_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_amount > 0", name="unit_amount_positive"),
        CheckConstraint("net + tax = gross", name="amounts_add_up"),
        UniqueConstraint("invoice_id", "position"),
    )

    invoice_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("invoices.id"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    gross: Mapped[int] = mapped_column(BigInteger)


class CreditNoteKind(StrEnum):
    REFUND = "refund"  # Paystack refunded (part of) the payment
    DISPUTE = "dispute"  # a chargeback was decided for the customer


class CreditNoteCounter(DefaultBase):
    """The last credit note number issued in a year: a series of its own, locked as `InvoiceCounter` is."""

    __tablename__ = "credit_note_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


class CreditNote(UUIDv7Base):
    """Money given back against an issued invoice, which itself never changes: one note per refund or lost
    dispute (`source_reference`, e.g. `refund:<id>`), with its own one line and the tax terms of the invoice it
    credits (net, tax and gross in proportion to that invoice's: the notes of one invoice never add up to more)."""

    __tablename__ = "credit_notes"
    __table_args__ = (
        CheckConstraint("kind IN ('refund', 'dispute')", name="kind_known"),
        CheckConstraint("net_total >= 0 AND tax_total >= 0 AND gross_total > 0", name="totals_positive"),
        CheckConstraint("net_total + tax_total = gross_total", name="totals_add_up"),
        CheckConstraint("sequence > 0", name="sequence_positive"),
        UniqueConstraint("year", "sequence"),
    )

    number: Mapped[str] = mapped_column(String(20), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    invoice_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("invoices.id"), index=True)
    invoice_number: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    source_reference: Mapped[str] = mapped_column(String(REFERENCE_MAX), unique=True)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX))
    currency: Mapped[str] = mapped_column(String(3))
    country: Mapped[str] = mapped_column(String(2))
    tax_mode: Mapped[str] = mapped_column(String(10))
    tax_name: Mapped[str] = mapped_column(String(40))
    tax_rate_bps: Mapped[int] = mapped_column(Integer)
    tax_basis: Mapped[str] = mapped_column(String(16))
    net_total: Mapped[int] = mapped_column(BigInteger)
    tax_total: Mapped[int] = mapped_column(BigInteger)
    gross_total: Mapped[int] = mapped_column(BigInteger)
    seller_name: Mapped[str] = mapped_column(String(200))
    seller_address: Mapped[str] = mapped_column(String(500))
    seller_tax_id: Mapped[str] = mapped_column(String(64))
    buyer_email: Mapped[str] = mapped_column(String(320))
    issued_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
