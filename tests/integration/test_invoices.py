"""Invoices: issued once per payment with net, tax and gross as TAX_MODE says, numbered per year, immutable in the
database, listed and downloaded as PDF by their owner only, and mailed by their job."""

from __future__ import annotations

import email
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pypdf
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.domain.accounts.models import User
from namaskah.domain.admin.service import UserNotFound
from namaskah.domain.invoices import worker
from namaskah.domain.invoices.errors import InvoiceImmutable, InvoiceReferenceConflict
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.domain.invoices.models import Invoice, InvoiceCounter, InvoiceLine
from namaskah.domain.invoices.service import InvoiceService, IssuedDocuments, LineItem
from namaskah.domain.tax.schemas import TaxRatePut
from namaskah.domain.tax.service import InvalidCountry, TaxRateNotFound, TaxService
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.settings import Settings
from tests.integration.test_admin import headers_for
from tests.support.databases import make_settings

Sessions = async_sessionmaker[AsyncSession]
YEAR = datetime.now(UTC).year
TOPUP = [LineItem("Wallet top-up", 1_000_000)]


async def user_id_of(sessions: Sessions, email_address: str) -> uuid.UUID:
    async with sessions() as session:
        found = await session.scalar(select(User.id).where(User.email == email_address))
        if found is not None:
            return found
        user = User(email=email_address, password_hash="not-a-real-hash")
        session.add(user)
        await session.commit()
        return user.id


async def issue(sessions: Sessions, settings: Settings | None = None, **kwargs: object) -> Invoice:
    """One invoice in a transaction of its own, committed (here: the test's savepoint is released)."""
    values: dict[str, object] = {"kind": "topup", "lines": TOPUP, "currency": "NGN"}
    values.update(kwargs)
    if "user_id" not in values:
        values["user_id"] = await user_id_of(sessions, "ada@example.com")
    values.setdefault("source_reference", f"topup_{uuid.uuid4().hex}")
    async with sessions() as session:
        invoice = await InvoiceService(session, settings=settings or make_settings()).issue(**values)  # type: ignore[arg-type]
        await session.commit()
        return invoice


async def count(sessions: Sessions, model: type) -> int:
    async with sessions() as session:
        return (await session.scalar(select(func.count()).select_from(model))) or 0


async def test_an_inclusive_invoice_splits_the_vat_out_of_what_was_paid(session_factory: Sessions) -> None:
    settings = make_settings(
        INVOICE_SELLER_NAME="Namaskah SMS Ltd", INVOICE_SELLER_ADDRESS="1 Marina, Lagos", INVOICE_SELLER_TAX_ID="TIN-7"
    )
    invoice = await issue(session_factory, settings, source_reference="topup_abc")
    assert invoice.number == f"INV-{YEAR}-000001"
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (930_233, 69_767, 1_000_000)
    assert (invoice.tax_mode, invoice.tax_name, invoice.tax_rate_bps, invoice.country) == (
        "inclusive",
        "VAT",
        750,
        "NG",
    )
    assert (invoice.seller_name, invoice.seller_address, invoice.seller_tax_id) == (
        "Namaskah SMS Ltd",
        "1 Marina, Lagos",
        "TIN-7",
    )
    assert invoice.buyer_email == "ada@example.com"
    async with session_factory() as session:
        (line,) = (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))).all()
    assert (line.unit_amount, line.quantity, line.net, line.tax, line.gross) == (
        1_000_000,
        1,
        930_233,
        69_767,
        1_000_000,
    )


async def test_an_exclusive_invoice_adds_the_vat_on_top(session_factory: Sessions) -> None:
    settings = make_settings(TAX_MODE="exclusive")
    invoice = await issue(session_factory, settings, kind="subscription", lines=[("Pro plan, March", 500_000, 2)])
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (1_000_000, 75_000, 1_075_000)
    assert invoice.tax_mode == "exclusive"
    assert [(line.unit_amount, line.quantity, line.gross) for line in invoice.lines] == [(500_000, 2, 1_075_000)]


async def test_each_line_is_taxed_and_the_totals_are_their_sums(session_factory: Sessions) -> None:
    lines = [LineItem("A", 7), LineItem("B", 20, 3), LineItem("C", 1_075)]
    invoice = await issue(session_factory, make_settings(TAX_MODE="exclusive"), lines=lines)
    assert [(line.position, line.net, line.tax, line.gross) for line in invoice.lines] == [
        (1, 7, 1, 8),  # 0.525 kobo of tax rounds up
        (2, 60, 5, 65),  # 4.5 rounds up
        (3, 1_075, 81, 1_156),  # 80.625
    ]
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (1_142, 87, 1_229)


async def test_the_same_payment_twice_is_one_invoice_and_one_mail(session_factory: Sessions) -> None:
    first = await issue(session_factory, source_reference="topup_twice")
    again = await issue(session_factory, source_reference="topup_twice", lines=[LineItem("other", 5)])
    assert again.id == first.id
    assert again.number == first.number
    assert await count(session_factory, Invoice) == 1
    async with session_factory() as session:
        jobs = (
            await session.scalars(select(OutboxMessage.payload).where(OutboxMessage.actor == "invoices.email"))
        ).all()
    assert jobs == [{"invoice_id": str(first.id)}]
    # The next payment gets the next number: the repeat took none.
    assert (await issue(session_factory)).number == f"INV-{YEAR}-000002"


async def test_the_same_reference_for_another_user_or_kind_is_a_conflict(session_factory: Sessions) -> None:
    await issue(session_factory, source_reference="topup_shared")
    grace = await user_id_of(session_factory, "grace@example.com")
    with pytest.raises(InvoiceReferenceConflict):
        await issue(session_factory, source_reference="topup_shared", user_id=grace)
    with pytest.raises(InvoiceReferenceConflict):
        await issue(session_factory, source_reference="topup_shared", kind="subscription")
    assert await count(session_factory, Invoice) == 1


async def test_each_year_starts_again_at_one(session_factory: Sessions) -> None:
    late, early = datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)
    numbers = [(await issue(session_factory, now=moment)).number for moment in (late, late, early, early, late)]
    assert numbers == ["INV-2030-000001", "INV-2030-000002", "INV-2031-000001", "INV-2031-000002", "INV-2030-000003"]
    async with session_factory() as session:
        counters = (await session.execute(select(InvoiceCounter.year, InvoiceCounter.last_number))).all()
    assert sorted(tuple(row) for row in counters) == [(2030, 3), (2031, 2)]


async def test_the_year_is_the_utc_one(session_factory: Sessions) -> None:
    # 00:30 on 1 January in Lagos (UTC+1) is still the old year in UTC.
    lagos = timezone(timedelta(hours=1))
    assert (await issue(session_factory, now=datetime(2032, 1, 1, 0, 30, tzinfo=lagos))).number == "INV-2031-000001"


async def test_the_buyer_country_picks_the_rate_and_a_quote_pins_it(session_factory: Sessions) -> None:
    settings = make_settings()
    async with session_factory() as session:
        taxes = TaxService(session, settings=settings)
        await taxes.put("GH", TaxRatePut(name="VAT", rate_bps=1_500))
        quoted = await taxes.quote(1_000_000)
        await session.commit()
    ghana = await issue(session_factory, settings, country="gh")
    assert (ghana.country, ghana.tax_rate_bps, ghana.tax_total) == ("GH", 1_500, 130_435)
    # The rate changes between the quote and the payment: the invoice keeps the rate the payer was quoted.
    async with session_factory() as session:
        await TaxService(session, settings=settings).put("NG", TaxRatePut(name="VAT", rate_bps=1_000))
        await session.commit()
    pinned = await issue(session_factory, settings, rate=quoted.rate)
    assert (pinned.tax_rate_bps, pinned.tax_total) == (750, quoted.split.tax) == (750, 69_767)
    assert (await issue(session_factory, settings)).tax_rate_bps == 1_000


async def test_the_default_country_comes_from_settings(session_factory: Sessions) -> None:
    async with session_factory() as session:
        await TaxService(session, settings=make_settings()).put("KE", TaxRatePut(name="VAT", rate_bps=1_600))
        await session.commit()
    invoice = await issue(session_factory, make_settings(TAX_DEFAULT_COUNTRY="KE"))
    assert (invoice.country, invoice.tax_rate_bps) == ("KE", 1_600)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"country": "FR"}, TaxRateNotFound),
        ({"country": "France"}, InvalidCountry),
        ({"user_id": uuid.uuid4()}, UserNotFound),
        ({"lines": []}, ValueError),
        ({"lines": [LineItem("Top-up", 0)]}, ValueError),
        ({"lines": [LineItem("Top-up", 100, True)]}, ValueError),
        ({"lines": [LineItem("   ", 100)]}, ValueError),
        ({"currency": "XYZ"}, ValueError),
        ({"source_reference": ""}, ValueError),
        ({"source_reference": "x" * 129}, ValueError),
        ({"kind": "refund"}, ValueError),
    ],
)
async def test_bad_calls_issue_nothing_and_take_no_number(
    session_factory: Sessions, changes: dict, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await issue(session_factory, **changes)
    assert await count(session_factory, Invoice) == 0
    assert (await issue(session_factory)).number == f"INV-{YEAR}-000001"


async def test_the_database_refuses_to_change_or_remove_an_issued_invoice(session_factory: Sessions) -> None:
    """The PostgreSQL trigger of migration 0019 (test_invoices_concurrency.py checks SQLite's)."""
    invoice = await issue(session_factory)
    statements = [
        "UPDATE invoices SET gross_total = 1, net_total = 1, tax_total = 0",
        "UPDATE invoices SET buyer_email = 'mallory@example.com'",
        "DELETE FROM invoices",
        "UPDATE invoice_lines SET description = 'something else'",
        "DELETE FROM invoice_lines",
        # Credit notes reference invoices (migration 0024): a TRUNCATE must name them too, and is refused.
        "TRUNCATE credit_notes, invoice_lines, invoices",
    ]
    async with session_factory() as session:
        for statement in statements:
            with pytest.raises(DBAPIError, match="issued invoices are immutable"):
                async with session.begin_nested():
                    await session.execute(text(statement))
        stored = await session.get(Invoice, invoice.id, populate_existing=True)
        assert stored is not None
        assert (stored.gross_total, stored.buyer_email) == (1_000_000, "ada@example.com")


async def test_the_service_offers_no_way_to_change_an_invoice(session_factory: Sessions) -> None:
    invoice = await issue(session_factory)
    async with session_factory() as session:
        service = InvoiceService(session, settings=make_settings())
        for target, method, args in [
            (target, method, args)
            for target in (service, service.repository)
            for method, args in [
                ("update", ({"gross_total": 1},)),
                ("update_many", ([invoice],)),
                ("upsert", (invoice,)),
                ("upsert_many", ([invoice],)),
                ("get_or_upsert", ()),
                ("get_and_update", ()),
                ("delete", (invoice.id,)),
                ("delete_many", ([invoice.id],)),
                ("delete_where", ()),
            ]
        ]:
            with pytest.raises(InvoiceImmutable):
                await getattr(target, method)(*args)
        for method in ("create", "create_many"):
            with pytest.raises(TypeError, match=r"InvoiceService\.issue"):
                await getattr(service, method)({"number": "INV-1999-000001"})
    assert await count(session_factory, Invoice) == 1
    # Every method our own classes add (advanced-alchemy's writers are refused above), none of them a writer.
    public = {name for cls in (InvoiceService, IssuedDocuments) for name in vars(cls) if not name.startswith("_")}
    assert public == {
        "repository_type", "missing", "issue", "by_reference", "owned", "load", "list_for", "create", "create_many",
    }  # fmt: skip


async def invoice_for(client: AsyncClient, session_factory: Sessions, email_address: str, **kwargs: object):
    headers = await headers_for(client, email_address)
    invoice = await issue(session_factory, user_id=await user_id_of(session_factory, email_address), **kwargs)
    return headers, invoice


async def test_owners_list_their_invoices_newest_first_and_paginated(
    client: AsyncClient, session_factory: Sessions
) -> None:
    ada, first = await invoice_for(client, session_factory, "ada@example.com", now=datetime(2030, 5, 1, tzinfo=UTC))
    second = await issue(session_factory, now=datetime(2030, 6, 1, tzinfo=UTC), user_id=first.user_id)
    grace, _ = await invoice_for(client, session_factory, "grace@example.com", now=datetime(2030, 7, 1, tzinfo=UTC))
    listed = (await client.get("/v1/billing/invoices", headers=ada)).json()
    assert listed["total"] == 2
    assert [item["number"] for item in listed["items"]] == [second.number, first.number]
    item = listed["items"][0]
    assert (item["net_total"], item["tax_total"], item["gross_total"]) == (930_233, 69_767, 1_000_000)
    assert item["buyer"] == {"email": "ada@example.com", "country": "NG"}
    assert item["seller"]["name"] == "Namaskah SMS"
    assert item["lines"] == [
        {
            "description": "Wallet top-up",
            "quantity": 1,
            "unit_amount": 1_000_000,
            "net": 930_233,
            "tax": 69_767,
            "gross": 1_000_000,
        }
    ]
    assert item["pdf_url"] == f"/v1/billing/invoices/{second.id}.pdf"
    page = (await client.get("/v1/billing/invoices?limit=1&offset=1", headers=ada)).json()
    assert (page["total"], [i["number"] for i in page["items"]]) == (2, [first.number])
    assert (await client.get("/v1/billing/invoices", headers=grace)).json()["total"] == 1
    refused = await client.get("/v1/billing/invoices?limit=0", headers=ada)
    assert (refused.status_code, refused.json()["code"]) == (422, "validation_failed")
    assert (await client.get("/v1/billing/invoices")).status_code == 401


async def test_the_owner_downloads_the_pdf(client: AsyncClient, session_factory: Sessions) -> None:
    ada, invoice = await invoice_for(client, session_factory, "ada@example.com")
    response = await client.get(f"/v1/billing/invoices/{invoice.id}.pdf", headers=ada)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    pdf_text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.content)).pages)
    for expected in (invoice.number, "VAT 7.5%", "NGN 9,302.33", "NGN 697.67", "NGN 10,000.00", "ada@example.com"):
        assert expected in pdf_text, expected


async def test_another_users_invoice_is_404(client: AsyncClient, session_factory: Sessions) -> None:
    _, invoice = await invoice_for(client, session_factory, "ada@example.com")
    grace = await headers_for(client, "grace@example.com")
    for path in (
        f"/v1/billing/invoices/{invoice.id}.pdf",  # someone else's
        f"/v1/billing/invoices/{uuid.uuid4()}.pdf",  # nobody's
        f"/v1/billing/invoices/{invoice.id}.txt",
        f"/v1/billing/invoices/{invoice.id}",
        "/v1/billing/invoices/not-an-id.pdf",
    ):
        response = await client.get(path, headers=grace)
        assert (response.status_code, response.json()["code"]) == (404, "invoice_not_found"), path
    assert (await client.get(f"/v1/billing/invoices/{invoice.id}.pdf")).status_code == 401


async def test_api_keys_need_the_wallet_read_scope(client: AsyncClient, session_factory: Sessions) -> None:
    ada, invoice = await invoice_for(client, session_factory, "ada@example.com")
    keys = {}
    for scopes in (["wallet:read"], ["verifications:read"]):
        created = await client.post("/v1/api-keys", json={"name": "books", "scopes": scopes}, headers=ada)
        keys[scopes[0]] = {"X-API-Key": created.json()["key"]}
    path = f"/v1/billing/invoices/{invoice.id}.pdf"
    assert (await client.get(path, headers=keys["wallet:read"])).status_code == 200
    for route in (path, "/v1/billing/invoices"):
        refused = await client.get(route, headers=keys["verifications:read"])
        assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")


def mails(directory: Path) -> list[EmailMessage]:
    found = sorted((directory / "mail").glob("*.eml")) if (directory / "mail").is_dir() else []
    return [email.message_from_bytes(path.read_bytes(), policy=default_policy) for path in found]  # type: ignore[misc]


async def test_the_job_mails_the_pdf_to_the_buyer_once_per_invoice(session_factory: Sessions, tmp_path: Path) -> None:
    settings = make_settings(DATA_DIR=str(tmp_path))
    invoice = await issue(session_factory, settings)
    job = EmailInvoice(invoice_id=invoice.id)
    assert await worker.email(session_factory.begin, settings, job) == "file"
    # A redelivered job (at least once) writes the same message again, not a second one.
    assert await worker.email(session_factory.begin, settings, job) == "file"
    (message,) = mails(tmp_path)
    assert message["To"] == "ada@example.com"
    assert invoice.number in message["Subject"]
    assert "NGN 10,000.00" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (attachment,) = list(message.iter_attachments())
    assert (attachment.get_content_type(), attachment.get_filename()) == ("application/pdf", f"{invoice.number}.pdf")
    pages = pypdf.PdfReader(io.BytesIO(attachment.get_content())).pages
    assert invoice.number in pages[0].extract_text()


async def test_the_job_of_an_unknown_invoice_sends_nothing(session_factory: Sessions, tmp_path: Path) -> None:
    settings = make_settings(DATA_DIR=str(tmp_path))
    assert await worker.email(session_factory.begin, settings, EmailInvoice(invoice_id=uuid.uuid4())) is None
    assert mails(tmp_path) == []
