"""Bodies of the invoice and credit note routes: each is the whole document (seller, buyer, lines, tax and totals),
which is also what its PDF is rendered from."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from namaskah.domain.invoices.models import CreditNote, Invoice, InvoiceLine
from namaskah.domain.tax.service import tax_label


class Seller(msgspec.Struct, frozen=True):
    name: str
    address: str
    tax_id: str


class Buyer(msgspec.Struct, frozen=True):
    email: str
    country: str


class InvoiceLineRead(msgspec.Struct, frozen=True):
    description: str
    quantity: int
    # Per unit, gross when `tax_mode` is inclusive and net when exclusive; the other three are the line's.
    unit_amount: int
    net: int
    tax: int
    gross: int

    @classmethod
    def of(cls, line: InvoiceLine) -> InvoiceLineRead:
        return cls(
            description=line.description,
            quantity=line.quantity,
            unit_amount=line.unit_amount,
            net=line.net,
            tax=line.tax,
            gross=line.gross,
        )


class InvoiceRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    number: str
    kind: str
    source_reference: str
    issued_at: datetime
    currency: str
    tax_mode: str
    tax_name: str
    tax_rate_bps: int
    net_total: int
    tax_total: int
    gross_total: int
    seller: Seller
    buyer: Buyer
    lines: list[InvoiceLineRead]
    pdf_url: str
    # `charged`, `on_topups` (no tax added: the top-ups that paid for it were taxed) or `prepayment` (a top-up
    # taxed when its credits are used), and the tax line as printed (`VAT 7.5%`, `VAT (charged on top-ups)`).
    tax_basis: str = "charged"
    tax_label: str = ""

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceRead:
        return cls(
            id=invoice.id,
            number=invoice.number,
            kind=invoice.kind,
            source_reference=invoice.source_reference,
            issued_at=invoice.issued_at,
            currency=invoice.currency,
            tax_mode=invoice.tax_mode,
            tax_name=invoice.tax_name,
            tax_rate_bps=invoice.tax_rate_bps,
            net_total=invoice.net_total,
            tax_total=invoice.tax_total,
            gross_total=invoice.gross_total,
            seller=Seller(name=invoice.seller_name, address=invoice.seller_address, tax_id=invoice.seller_tax_id),
            buyer=Buyer(email=invoice.buyer_email, country=invoice.country),
            lines=[InvoiceLineRead.of(line) for line in invoice.lines],
            pdf_url=pdf_path(invoice.id),
            tax_basis=invoice.tax_basis,
            tax_label=tax_label(invoice.tax_name, invoice.tax_rate_bps, invoice.tax_basis),
        )


class InvoiceList(msgspec.Struct, frozen=True):
    items: list[InvoiceRead]
    total: int


def pdf_path(invoice_id: uuid.UUID) -> str:
    """Where the owner downloads the PDF (the API's own path, under the same credentials)."""
    return f"/v1/billing/invoices/{invoice_id}.pdf"


class CreditNoteRead(msgspec.Struct, frozen=True):
    """Shaped as an invoice is (the PDF template is the invoice's), plus the invoice it credits. `kind` is
    `refund` or `dispute`; `source_reference` the refund's or dispute's (`refund:<id>`)."""

    id: uuid.UUID
    number: str
    kind: str
    invoice_id: uuid.UUID
    invoice_number: str
    source_reference: str
    issued_at: datetime
    currency: str
    tax_mode: str
    tax_name: str
    tax_rate_bps: int
    tax_basis: str
    tax_label: str
    net_total: int
    tax_total: int
    gross_total: int
    seller: Seller
    buyer: Buyer
    lines: list[InvoiceLineRead]
    pdf_url: str

    @classmethod
    def of(cls, note: CreditNote) -> CreditNoteRead:
        # One line: the amount credited, per unit as the invoice's tax mode reads amounts.
        unit = note.gross_total if note.tax_mode == "inclusive" else note.net_total
        line = InvoiceLineRead(
            description=note.description,
            quantity=1,
            unit_amount=unit,
            net=note.net_total,
            tax=note.tax_total,
            gross=note.gross_total,
        )
        return cls(
            id=note.id,
            number=note.number,
            kind=note.kind,
            invoice_id=note.invoice_id,
            invoice_number=note.invoice_number,
            source_reference=note.source_reference,
            issued_at=note.issued_at,
            currency=note.currency,
            tax_mode=note.tax_mode,
            tax_name=note.tax_name,
            tax_rate_bps=note.tax_rate_bps,
            tax_basis=note.tax_basis,
            tax_label=tax_label(note.tax_name, note.tax_rate_bps, note.tax_basis),
            net_total=note.net_total,
            tax_total=note.tax_total,
            gross_total=note.gross_total,
            seller=Seller(name=note.seller_name, address=note.seller_address, tax_id=note.seller_tax_id),
            buyer=Buyer(email=note.buyer_email, country=note.country),
            lines=[line],
            pdf_url=credit_note_pdf_path(note.id),
        )


class CreditNoteList(msgspec.Struct, frozen=True):
    items: list[CreditNoteRead]
    total: int


def credit_note_pdf_path(note_id: uuid.UUID) -> str:
    return f"/v1/billing/credit-notes/{note_id}.pdf"
