"""The invoice errors callers and clients see."""

from __future__ import annotations

from namaskah.lib.errors import DomainError


class InvoiceNotFound(DomainError):
    status_code = 404
    code = "invoice_not_found"
    title = "Invoice not found"


class CreditNoteNotFound(DomainError):
    status_code = 404
    code = "credit_note_not_found"
    title = "Credit note not found"


class InvoiceReferenceConflict(DomainError):
    """The payment reference already has an invoice, for another user or kind: a bug in the caller."""

    status_code = 409
    code = "invoice_reference_conflict"
    title = "Payment already invoiced for something else"


class InvoiceImmutable(TypeError):
    """An issued invoice can not be changed or removed: there is no such path (the database refuses it too)."""
