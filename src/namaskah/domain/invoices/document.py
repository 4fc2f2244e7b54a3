"""An invoice or a credit note as a document: HTML from the Jinja2 templates in templates/invoices/ (a credit note's
extends the invoice's), made a PDF by xhtml2pdf in a worker thread, and the mail that carries it.

The PDF is rendered again at every download rather than stored: every figure printed comes from rows the database
will not let change (the triggers of migrations 0019 and 0024), so each rendering shows the same document; the
template only decides the layout. Nothing to keep in sync, no blobs in the database, and rendering takes some
20-40 ms here.
"""

from __future__ import annotations

import asyncio
import io
import threading
from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape
from xhtml2pdf import pisa  # type: ignore[import-untyped]

from namaskah.domain.invoices.schemas import CreditNoteRead, InvoiceRead
from namaskah.domain.tax.calc import TaxBasis, TaxMode
from namaskah.domain.tax.service import tax_label
from namaskah.lib.mail import Attachment, Mail
from namaskah.lib.money import format_money

PDF = "application/pdf"
# ReportLab, under xhtml2pdf, keeps module-level state and is documented as not thread-safe. One rendering at a
# time per process costs nothing the GIL would not take anyway (it is pure-Python CPU work).
_RENDER_LOCK = threading.Lock()
Document = InvoiceRead | CreditNoteRead


class PdfRenderError(RuntimeError):
    """xhtml2pdf reported errors: the template produced something it could not lay out."""


def filename(invoice: Document) -> str:
    return f"{invoice.number}.pdf"


def render_html(invoice: Document) -> str:
    template = "credit_note.html" if isinstance(invoice, CreditNoteRead) else "invoice.html"
    return _environment().get_template(template).render(_context(invoice))


def render_pdf(invoice: Document) -> bytes:
    """The document's PDF. Blocking CPU work: from async code, await `pdf_of` instead."""
    html = render_html(invoice)
    output = io.BytesIO()
    with _RENDER_LOCK:
        status = pisa.CreatePDF(html, dest=output, encoding="utf-8")
    if status.err:
        raise PdfRenderError(f"xhtml2pdf reported {status.err} error(s) rendering {invoice.number}")
    return output.getvalue()


async def pdf_of(invoice: Document) -> bytes:
    """`render_pdf` in a worker thread, so the event loop goes on serving meanwhile."""
    return await asyncio.to_thread(render_pdf, invoice)


async def invoice_mail(invoice: Document) -> Mail:
    """The mail to the buyer with the PDF attached."""
    environment, context = _environment(), _context(invoice)
    what = "credit note" if context["credit_note"] else "invoice"
    context["subject"] = subject = f"Your Namaskah SMS {what} {invoice.number}"
    return Mail(
        to=invoice.buyer.email,
        subject=subject,
        text=environment.get_template("email.txt").render(context),
        html=environment.get_template("email.html").render(context),
        attachments=(Attachment(filename=filename(invoice), content_type=PDF, data=await pdf_of(invoice)),),
    )


def _context(invoice: Document) -> dict[str, Any]:
    return {
        "invoice": invoice,
        "credit_note": isinstance(invoice, CreditNoteRead),
        "tax_label": tax_label(invoice.tax_name, invoice.tax_rate_bps, invoice.tax_basis),
        "inclusive": invoice.tax_mode == TaxMode.INCLUSIVE.value,
        "tax_note": _TAX_NOTES.get(TaxBasis(invoice.tax_basis), "").format(tax=invoice.tax_name),
    }


# The sentence under the totals when the tax is charged elsewhere (TAX_POINT), instead of "Prices include ...".
_TAX_NOTES = {
    TaxBasis.ON_TOPUPS: "No {tax} is added here: it was charged on the wallet top-ups that paid for this.",
    TaxBasis.PREPAYMENT: "A prepayment of wallet credits: no {tax} is charged here; it is charged when they are used.",
}


def _figure(amount: int, currency: str) -> str:
    """`123456` kobo as `1,234.56`: a table cell under a heading that names the currency."""
    return format_money(amount, currency).removeprefix(f"{currency} ")


def _date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%d %B %Y, %H:%M UTC")


@cache
def _environment() -> Environment:
    environment = Environment(
        # The mail's HTML part extends the layout every mail of ours has.
        loader=ChoiceLoader(
            [PackageLoader("namaskah", "templates/invoices"), PackageLoader("namaskah", "templates/mail")]
        ),
        # Every value is escaped in HTML: a description or an address can never become markup (or a fetched URL).
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(date=_date, money=format_money, figure=_figure)
    return environment
