"""Tax and invoices of top-ups: the quote at checkout (what Paystack charges, what the wallet gets), one invoice per
paid top-up issued with the credit (and mailed through the outbox), none for a mismatch, gapless numbers under 50
concurrent settlements, TAX_POINT payment vs usage for top-ups and subscriptions (VAT never charged twice), and
the PDF of a top-up invoice."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.domain.billing.models import BillingFlag, Topup
from namaskah.domain.billing.paystack_schemas import Transaction
from namaskah.domain.billing.service import INVOICE_LINE, Settled, TopupService
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.domain.invoices.models import Invoice
from namaskah.domain.invoices.schemas import InvoiceRead
from namaskah.domain.subscriptions.service import SubscriptionService
from namaskah.domain.tax.schemas import TaxRatePut
from namaskah.domain.tax.service import TaxService
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.settings import Settings
from tests.conftest import serve_in_loop
from tests.integration.test_billing_topups import (
    AMOUNT,
    balance,
    committed,  # noqa: F401 - a fixture, used by name
    count,
    paystack_app,
    start,
)
from tests.integration.test_subscriptions import PRO_CREDIT, PRO_PRICE
from tests.integration.test_verifications import customer, new_user
from tests.integration.test_wallet_ledger import assert_ledger_balances
from tests.support.databases import make_settings
from tests.support.fake_paystack import FakePaystack
from tests.unit.test_invoice_document import pdf_text

Sessions = async_sessionmaker[AsyncSession]
_paystack_ids = itertools.count(5_000_000)

# (TAX_MODE, TAX_POINT) -> what a top-up of AMOUNT (NGN 5,000) charges, its tax, and its invoice's net and basis.
CASES = {
    ("inclusive", "payment"): (AMOUNT, 34_884, 465_116, "charged"),  # 500000 / 1.075 = 465116.28
    ("exclusive", "payment"): (537_500, 37_500, AMOUNT, "charged"),
    ("inclusive", "usage"): (AMOUNT, 0, AMOUNT, "prepayment"),
    ("exclusive", "usage"): (AMOUNT, 0, AMOUNT, "prepayment"),
}


def settings_for(mode: str, point: str) -> Settings:
    return make_settings(TAX_MODE=mode, TAX_POINT=point)


async def opened(sessions: Sessions, settings: Settings, user_id: uuid.UUID, amount: int = AMOUNT) -> Topup:
    async with sessions() as session:
        topup = await TopupService(session=session, settings=settings).open(user_id, amount, "NGN")
        await session.commit()
    return topup


def paid(topup: Topup, amount: int | None = None) -> Transaction:
    """Paystack's word that the top-up was paid: by default exactly what we asked it to charge."""
    charged = topup.charged_amount if amount is None else amount
    return Transaction(
        id=next(_paystack_ids), status="success", reference=topup.reference, amount=charged, currency="NGN"
    )


async def settle(sessions: Sessions, settings: Settings, report: Transaction, via: str = "webhook") -> Settled:
    async with sessions() as session:
        outcome = await TopupService(session=session, settings=settings).settle(report, via=via)
        await session.commit()
    return outcome


async def invoice_of(sessions: Sessions, reference: str) -> Invoice | None:
    async with sessions() as session:
        return await session.scalar(select(Invoice).where(Invoice.source_reference == reference))


async def invoice_mails(sessions: Sessions) -> list[uuid.UUID]:
    async with sessions() as session:
        payloads = await session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.actor == EmailInvoice.actor_name)
        )
        return [EmailInvoice.decode(payload).invoice_id for payload in payloads]


# --- the quote and the invoice ----------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "point"), list(CASES))
async def test_a_paid_top_up_credits_its_amount_and_is_invoiced_once_as_the_tax_point_says(
    session_factory: Sessions, mode: str, point: str
) -> None:
    settings = settings_for(mode, point)
    charged, tax, net, basis = CASES[mode, point]
    user_id = (await new_user(session_factory)).id

    topup = await opened(session_factory, settings, user_id)
    assert (topup.amount, topup.charged_amount, topup.tax_amount, topup.tax_point) == (AMOUNT, charged, tax, point)
    assert await settle(session_factory, settings, paid(topup)) is Settled.CREDITED
    assert await settle(session_factory, settings, paid(topup), via="verify") is Settled.ALREADY

    assert await balance(session_factory, user_id) == AMOUNT  # the wallet gets the amount, never the tax
    invoice = await invoice_of(session_factory, topup.reference)
    assert invoice is not None
    assert (invoice.kind, invoice.user_id, invoice.tax_mode, invoice.tax_basis) == ("topup", user_id, mode, basis)
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (net, tax, charged)
    assert invoice.tax_rate_bps == (750 if point == "payment" else 0)
    [line] = invoice.lines
    assert (line.description, line.unit_amount, line.net, line.tax, line.gross) == (
        INVOICE_LINE,
        AMOUNT,
        net,
        tax,
        charged,
    )
    assert await count(session_factory, Invoice) == 1
    assert await invoice_mails(session_factory) == [invoice.id]  # mailed by the invoice job, once
    async with session_factory() as session:
        await assert_ledger_balances(session)


async def test_exclusive_tax_asks_paystack_for_the_gross_and_the_net_alone_is_a_mismatch(
    session_factory: Sessions,
) -> None:
    settings = settings_for("exclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await opened(session_factory, settings, user_id)

    assert await settle(session_factory, settings, paid(topup, amount=AMOUNT)) is Settled.MISMATCH

    assert await balance(session_factory, user_id) == 0
    assert await count(session_factory, Invoice) == 0
    assert await invoice_mails(session_factory) == []
    async with session_factory() as session:
        flag = (await session.scalars(select(BillingFlag))).one()
    assert (flag.kind, flag.amount) == ("mismatch", AMOUNT)
    assert "initialised for 537500" in flag.detail


@pytest.mark.parametrize("reported", [AMOUNT - 1, AMOUNT + 1])
async def test_a_mismatch_creates_no_invoice(session_factory: Sessions, reported: int) -> None:
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await opened(session_factory, settings, user_id)

    assert await settle(session_factory, settings, paid(topup, amount=reported)) is Settled.MISMATCH
    # Even a later report with the right amount: the top-up is settled (mismatch), an operator takes it from here.
    assert await settle(session_factory, settings, paid(topup)) is Settled.ALREADY

    assert await count(session_factory, Invoice) == 0
    assert await invoice_mails(session_factory) == []
    assert await balance(session_factory, user_id) == 0


async def test_the_invoice_keeps_the_rate_quoted_at_checkout(session_factory: Sessions) -> None:
    settings = settings_for("exclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await opened(session_factory, settings, user_id)
    async with session_factory() as session:  # an operator changes the rate while the customer pays
        await TaxService(session, settings=settings).put("NG", TaxRatePut(name="VAT", rate_bps=1_000))
        await session.commit()

    assert await settle(session_factory, settings, paid(topup)) is Settled.CREDITED

    invoice = await invoice_of(session_factory, topup.reference)
    assert invoice is not None
    assert (invoice.tax_rate_bps, invoice.tax_total, invoice.gross_total) == (750, 37_500, 537_500)


async def test_a_top_up_from_before_the_quote_was_stored_is_invoiced_as_charged(session_factory: Sessions) -> None:
    """Migration 0022 left older top-ups with charged = amount and no quote: their amount reads as a gross."""
    settings = settings_for("exclusive", "payment")
    user_id = (await new_user(session_factory)).id
    async with session_factory() as session:
        legacy = Topup(reference="tu-legacy", user_id=user_id, amount=AMOUNT, currency="NGN", status="pending")
        legacy.charged_amount = AMOUNT
        session.add(legacy)
        await session.commit()

    assert await settle(session_factory, settings, paid(legacy)) is Settled.CREDITED

    invoice = await invoice_of(session_factory, "tu-legacy")
    assert invoice is not None
    assert (invoice.tax_mode, invoice.net_total, invoice.tax_total, invoice.gross_total) == (
        "inclusive",
        465_116,
        34_884,
        AMOUNT,
    )


async def test_a_refund_of_a_taxed_top_up_takes_back_the_credits_not_the_tax(session_factory: Sessions) -> None:
    settings = settings_for("exclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await opened(session_factory, settings, user_id)
    await settle(session_factory, settings, paid(topup))

    async with session_factory() as session:
        service = TopupService(session=session, settings=settings)
        half = await service.refund(refund_id="r1", reference=topup.reference, amount=268_750, currency="NGN")
        rest = await service.refund(refund_id="r2", reference=topup.reference, amount=268_750, currency="NGN")
        await session.commit()

    assert (half, rest) == (True, True)  # Paystack refunded the whole charge: 537500 kobo, 500000 of credits
    assert await balance(session_factory, user_id) == 0
    assert await count(session_factory, BillingFlag) == 0
    async with session_factory() as session:
        row = await session.scalar(select(Topup).where(Topup.reference == topup.reference))
        await assert_ledger_balances(session)
    assert row is not None
    assert row.refunded_amount == AMOUNT


# --- TAX_POINT: VAT once, on the top-up or on the subscription -------------------------------------------


@pytest.mark.parametrize(("mode", "point"), list(CASES))
async def test_a_subscription_paid_from_a_top_up_carries_the_vat_once(
    session_factory: Sessions, mode: str, point: str
) -> None:
    settings = settings_for(mode, point)
    user_id = (await new_user(session_factory)).id
    async with session_factory() as session:
        charged = {tier.name: c for tier, c in await SubscriptionService(session, settings=settings).plans()}
    # Payment: the credits were taxed when bought, a month costs its price. Usage: the month is taxed.
    vat_on_top = mode == "exclusive" and point == "usage"
    assert charged["pro"] == (537_500 if vat_on_top else PRO_PRICE)

    topup = await opened(session_factory, settings, user_id, amount=charged["pro"])
    await settle(session_factory, settings, paid(topup))
    async with session_factory() as session:
        assert await SubscriptionService(session, settings=settings).subscribe(user_id, "pro")
        await session.commit()

    assert await balance(session_factory, user_id) == PRO_CREDIT  # the top-up paid exactly one month
    async with session_factory() as session:
        invoices = {i.kind: i for i in await session.scalars(select(Invoice).where(Invoice.user_id == user_id))}
    top_up, month = invoices["topup"], invoices["subscription"]
    vat = 37_500 if mode == "exclusive" else 34_884
    assert top_up.tax_total + month.tax_total == vat  # 7.5% once, never on both
    if point == "payment":
        assert (top_up.tax_total, top_up.tax_basis) == (vat, "charged")
        assert (month.net_total, month.tax_total, month.gross_total) == (PRO_PRICE, 0, PRO_PRICE)
        assert (month.tax_basis, month.tax_rate_bps) == ("on_topups", 0)
        assert InvoiceRead.of(month).tax_label == "VAT (charged on top-ups)"
    else:
        assert (top_up.tax_total, top_up.tax_basis, top_up.gross_total) == (0, "prepayment", charged["pro"])
        assert InvoiceRead.of(top_up).tax_label == "VAT (prepayment, charged on use)"
        assert (month.tax_total, month.tax_basis, month.tax_rate_bps) == (vat, "charged", 750)
        assert InvoiceRead.of(month).tax_label == "VAT 7.5%"


# --- concurrency: real commits --------------------------------------------------------------------------


async def test_fifty_top_ups_settled_concurrently_by_webhook_and_verify_number_their_invoices_without_gaps(
    committed: Sessions,  # noqa: F811 - the imported fixture
) -> None:
    settings = settings_for("exclusive", "payment")
    users = [(await new_user(committed, f"payer{n}@example.com")).id for n in range(5)]
    topups = [await opened(committed, settings, users[n % 5], AMOUNT + n * 100) for n in range(50)]
    reports = [paid(topup) for topup in topups]

    # Every top-up reported twice at once (the webhook's job and a verifying read), all 100 reports together.
    settled = await asyncio.gather(
        *(settle(committed, settings, report, via) for report in reports for via in ("webhook", "verify"))
    )

    assert settled.count(Settled.CREDITED) == 50
    assert settled.count(Settled.ALREADY) == 50
    year = datetime.now(UTC).year
    async with committed() as session:
        rows = (await session.scalars(select(Invoice).order_by(Invoice.sequence))).all()
        await assert_ledger_balances(session)
    assert [row.number for row in rows] == [f"INV-{year}-{n:06d}" for n in range(1, 51)]
    assert {row.source_reference for row in rows} == {topup.reference for topup in topups}
    assert {row.source_reference: row.gross_total for row in rows} == {t.reference: t.charged_amount for t in topups}
    assert sorted(await invoice_mails(committed)) == sorted(row.id for row in rows)
    for n, user_id in enumerate(users):
        assert await balance(committed, user_id) == sum(AMOUNT + k * 100 for k in range(n, 50, 5))


# --- the API: the quote in the answer, and the PDF ------------------------------------------------------


@pytest.fixture
def fake() -> FakePaystack:
    return FakePaystack()


async def api(
    sessions: Sessions, fake: FakePaystack, broker: StubBroker, **settings: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = paystack_app(sessions, fake, broker, **settings)
    async with serve_in_loop(app) as client:
        yield client
    await app.state.paystack.aclose()
    assert fake.violations == []


@pytest.fixture
async def exclusive_client(
    session_factory: Sessions, fake: FakePaystack, stub_broker: StubBroker
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in api(session_factory, fake, stub_broker, TAX_MODE="exclusive"):
        yield client


@pytest.fixture
async def usage_client(
    session_factory: Sessions, fake: FakePaystack, stub_broker: StubBroker
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in api(session_factory, fake, stub_broker, TAX_POINT="usage"):
        yield client


async def test_the_api_answers_the_charge_and_the_invoice_pdf_holds_number_tax_and_totals(
    exclusive_client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    client = exclusive_client
    headers, user_id = await customer(client, session_factory)

    created = await start(client, headers)
    assert (created["amount"], created["charged_amount"], created["tax_amount"]) == (AMOUNT, 537_500, 37_500)
    assert created["tax_point"] == "payment"
    reference = created["reference"]
    assert fake.transactions[reference].amount == 537_500  # Paystack is asked for the gross
    fake.pay(reference)
    shown = (await client.get(f"/v1/billing/topups/{reference}", headers=headers)).json()
    assert (shown["status"], shown["amount"], shown["charged_amount"], shown["tax_amount"]) == (
        "success",
        AMOUNT,
        537_500,
        37_500,
    )
    assert await balance(session_factory, user_id) == AMOUNT

    listed = (await client.get("/v1/billing/invoices", headers=headers)).json()
    [item] = listed["items"]
    assert (item["kind"], item["source_reference"], item["tax_label"], item["tax_basis"]) == (
        "topup",
        reference,
        "VAT 7.5%",
        "charged",
    )
    assert (item["net_total"], item["tax_total"], item["gross_total"]) == (AMOUNT, 37_500, 537_500)
    pdf = await client.get(item["pdf_url"], headers=headers)
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    text = pdf_text(pdf.content)
    for expected in (item["number"], "VAT 7.5%", "NGN 5,000.00", "NGN 375.00", "NGN 5,375.00", INVOICE_LINE):
        assert expected in text, expected


async def test_a_prepayment_receipt_says_where_the_vat_is_charged(
    usage_client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    client = usage_client
    headers, _ = await customer(client, session_factory)
    created = await start(client, headers)
    assert (created["charged_amount"], created["tax_amount"], created["tax_point"]) == (AMOUNT, 0, "usage")
    fake.pay(created["reference"])
    await client.get(f"/v1/billing/topups/{created['reference']}", headers=headers)

    [item] = (await client.get("/v1/billing/invoices", headers=headers)).json()["items"]
    assert (item["net_total"], item["tax_total"], item["gross_total"]) == (AMOUNT, 0, AMOUNT)
    text = " ".join(pdf_text((await client.get(item["pdf_url"], headers=headers)).content).split())  # cells wrap
    assert "VAT (prepayment, charged on use) NGN 0.00" in text
    assert "no VAT is charged here; it is charged when they are used" in text
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Invoice)) == 1
