"""The invoice as a document: the PDF opens and holds the number, seller, buyer, tax line and totals; values are
escaped; the mail carries the PDF as an attachment."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime

import pypdf
import pytest

from namaskah.domain.invoices.document import filename, invoice_mail, pdf_of, render_html, render_pdf
from namaskah.domain.invoices.schemas import Buyer, InvoiceLineRead, InvoiceRead, Seller, pdf_path
from namaskah.lib.mail import build_message
from namaskah.lib.money import format_money


def document(**changes: object) -> InvoiceRead:
    invoice_id = uuid.UUID("01890000-0000-7000-8000-00000000abcd")
    values: dict[str, object] = {
        "id": invoice_id,
        "number": "INV-2026-000042",
        "kind": "topup",
        "source_reference": "topup_ref_123",
        "issued_at": datetime(2026, 3, 14, 15, 9, tzinfo=UTC),
        "currency": "NGN",
        "tax_mode": "inclusive",
        "tax_name": "VAT",
        "tax_rate_bps": 750,
        "net_total": 930_233,
        "tax_total": 69_767,
        "gross_total": 1_000_000,
        "seller": Seller(name="Namaskah SMS Ltd", address="1 Marina, Lagos", tax_id="TIN-0001"),
        "buyer": Buyer(email="ada@example.com", country="NG"),
        "lines": [
            InvoiceLineRead(
                description="Wallet top-up", quantity=1, unit_amount=1_000_000, net=930_233, tax=69_767, gross=1_000_000
            )
        ],
        "pdf_url": pdf_path(invoice_id),
    }
    values.update(changes)
    return InvoiceRead(**values)  # type: ignore[arg-type]


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_pdf_opens_and_holds_the_invoice() -> None:
    data = render_pdf(document())
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    for expected in (
        "INV-2026-000042",
        "Namaskah SMS Ltd",
        "1 Marina, Lagos",
        "TIN-0001",
        "ada@example.com",
        "Wallet top-up",
        "VAT 7.5%",
        "NGN 9,302.33",  # net
        "NGN 697.67",  # tax
        "NGN 10,000.00",  # gross
        "14 March 2026",
        "topup_ref_123",
        "Prices include VAT 7.5%",
    ):
        assert expected in text, expected


def test_an_exclusive_invoice_says_tax_is_added() -> None:
    text = pdf_text(
        render_pdf(
            document(
                tax_mode="exclusive",
                net_total=1_000_000,
                tax_total=75_000,
                gross_total=1_075_000,
                lines=[InvoiceLineRead("Pro plan, March 2026", 1, 1_000_000, 1_000_000, 75_000, 1_075_000)],
            )
        )
    )
    assert "VAT 7.5% is added to the prices shown" in text
    assert "NGN 10,750.00" in text
    assert "NGN 750.00" in text
    assert "Unit price (excl." in text


def test_many_lines_spill_onto_more_pages() -> None:
    lines = [InvoiceLineRead(f"Line {n}", 1, 1_075, 1_000, 75, 1_075) for n in range(60)]
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(document(lines=lines))))
    assert len(reader.pages) >= 2
    assert "Line 59" in pdf_text(render_pdf(document(lines=lines)))


def test_values_are_escaped_not_markup() -> None:
    hostile = '<img src="http://127.0.0.1:1/x.png"><b>bold</b> & co'
    invoice = document(lines=[InvoiceLineRead(hostile, 1, 1, 1, 0, 1)])
    html = render_html(invoice)
    assert "<img" not in html
    assert "&lt;img" in html
    assert "&amp; co" in html
    # The PDF shows the text as typed: no image fetched, no bold applied.
    assert 'src="http://127.0.0.1:1/x.png"><b>bold</b>' in pdf_text(render_pdf(invoice))


def test_rendering_runs_in_a_thread_and_concurrent_renders_all_succeed() -> None:
    async def many() -> list[bytes]:
        return await asyncio.gather(*(pdf_of(document(number=f"INV-2026-{n:06d}")) for n in range(1, 9)))

    for n, data in enumerate(asyncio.run(many()), start=1):
        assert f"INV-2026-{n:06d}" in pdf_text(data)


@pytest.mark.parametrize("mode", ["inclusive", "exclusive"])
def test_the_mail_attaches_the_pdf(mode: str) -> None:
    invoice = document(tax_mode=mode)
    mail = asyncio.run(invoice_mail(invoice))
    assert mail.to == "ada@example.com"
    assert "INV-2026-000042" in mail.subject
    assert "NGN 10,000.00" in mail.text
    assert "VAT 7.5%" in mail.text
    assert mail.html is not None
    assert "INV-2026-000042" in mail.html
    (attachment,) = mail.attachments
    assert (attachment.filename, attachment.content_type) == (filename(invoice), "application/pdf")
    assert "INV-2026-000042" in pdf_text(attachment.data)
    message = build_message(mail, "Namaskah <billing@namaskah.local>", mail_id=uuid.uuid4())
    assert message.get_content_type() == "multipart/mixed"
    (part,) = list(message.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == ("application/pdf", "INV-2026-000042.pdf")
    assert part.get_content() == attachment.data


def test_amounts_print_from_minor_units_exactly() -> None:
    assert [format_money(a) for a in (0, 5, 99, 100, 123_456, 100_000_000, -5, -123_456)] == [
        "NGN 0.00",
        "NGN 0.05",
        "NGN 0.99",
        "NGN 1.00",
        "NGN 1,234.56",
        "NGN 1,000,000.00",
        "NGN -0.05",
        "NGN -1,234.56",
    ]
