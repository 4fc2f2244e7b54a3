"""Credit notes for refunded and lost-dispute top-ups: a full refund credits the whole invoice, partial refunds never
add up to more than it, one note per refund or dispute whatever repeats or races, none for a top-up with no invoice
(flagged), immutable in the database, gapless CN numbers under 32 concurrent refunds (some rolled back), the PDF and
the mail, and owner-only access through the API."""

from __future__ import annotations

import asyncio
import email
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.billing.models import BillingFlag, Topup
from namaskah.domain.billing.service import TopupService
from namaskah.domain.invoices import worker as invoice_worker
from namaskah.domain.invoices.credit_notes import CreditNoteService
from namaskah.domain.invoices.errors import InvoiceImmutable
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.domain.invoices.models import CreditNote, Invoice
from namaskah.domain.invoices.schemas import CreditNoteRead
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.settings import Settings
from tests.conftest import serve_in_loop
from tests.integration.test_billing_topups import AMOUNT, balance, paystack_app, start
from tests.integration.test_billing_webhooks import deliver, run_jobs
from tests.integration.test_topup_invoices import CASES, opened, paid, settings_for, settle
from tests.integration.test_verifications import customer, new_user, transactions
from tests.integration.test_wallet_ledger import assert_ledger_balances
from tests.support.databases import make_settings, run_cli, settings_env
from tests.support.fake_paystack import SECRET_KEY, FakePaystack, charge_success, dispute, refund_processed
from tests.unit.test_invoice_document import pdf_text

Sessions = async_sessionmaker[AsyncSession]
YEAR = datetime.now(UTC).year
REFUNDS = 32


async def paid_topup(sessions: Sessions, settings: Settings, user_id: uuid.UUID, amount: int = AMOUNT) -> Topup:
    topup = await opened(sessions, settings, user_id, amount)
    await settle(sessions, settings, paid(topup))
    return topup


async def refund(
    sessions: Sessions, settings: Settings, topup: Topup, refund_id: str, amount: int, *, fail: bool = False
) -> bool | None:
    """One refund.processed applied in its own transaction; with `fail`, something breaks after the note took its
    number and the whole transaction rolls back (None)."""
    try:
        async with sessions() as session, session.begin():
            booked = await TopupService(session=session, settings=settings).refund(
                refund_id=refund_id, reference=topup.reference, amount=amount, currency="NGN"
            )
            if fail:
                raise RuntimeError("after the note")
            return booked
    except RuntimeError:
        return None


async def notes_of(sessions: Sessions, reference: str | None = None) -> list[CreditNote]:
    async with sessions() as session:
        query = select(CreditNote).order_by(CreditNote.sequence)
        if reference is not None:
            query = query.join(Invoice, Invoice.id == CreditNote.invoice_id).where(
                Invoice.source_reference == reference
            )
        return list((await session.scalars(query)).all())


async def invoice_of(sessions: Sessions, reference: str) -> Invoice:
    async with sessions() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.source_reference == reference))
    assert invoice is not None
    return invoice


async def note_mails(sessions: Sessions) -> list[uuid.UUID]:
    async with sessions() as session:
        payloads = await session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.actor == EmailInvoice.actor_name)
        )
        jobs = [EmailInvoice.decode(payload) for payload in payloads]
    return [job.invoice_id for job in jobs if job.credit_note]


async def flags(sessions: Sessions) -> list[tuple[str, int | None]]:
    async with sessions() as session:
        return [(f.kind, f.amount) for f in await session.scalars(select(BillingFlag).order_by(BillingFlag.kind))]


# --- what a note says ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "point"), list(CASES))
async def test_a_full_refund_issues_one_note_equal_to_the_invoice(
    session_factory: Sessions, mode: str, point: str
) -> None:
    settings = settings_for(mode, point)
    user_id = (await new_user(session_factory)).id
    topup = await paid_topup(session_factory, settings, user_id)
    invoice = await invoice_of(session_factory, topup.reference)

    assert await refund(session_factory, settings, topup, "9001", topup.charged_amount) is True

    [note] = await notes_of(session_factory)
    assert note.number == f"CN-{YEAR}-000001"
    assert (note.invoice_id, note.invoice_number, note.user_id, note.kind) == (
        invoice.id,
        invoice.number,
        user_id,
        "refund",
    )
    assert (note.net_total, note.tax_total, note.gross_total) == (
        invoice.net_total,
        invoice.tax_total,
        invoice.gross_total,
    )
    assert (note.tax_basis, note.tax_rate_bps, note.tax_mode) == (invoice.tax_basis, invoice.tax_rate_bps, mode)
    read = CreditNoteRead.of(note)
    # TAX_POINT=usage: the prepayment receipt was at 0 tax, and so is its note, with the same label.
    assert read.tax_label == ("VAT 7.5%" if point == "payment" else "VAT (prepayment, charged on use)")
    assert (note.tax_total == 0) is (point == "usage")
    assert await balance(session_factory, user_id) == 0
    assert await note_mails(session_factory) == [note.id]
    async with session_factory() as session:
        await assert_ledger_balances(session)


async def test_partial_refunds_split_the_tax_in_proportion_and_never_credit_more_than_the_invoice(
    session_factory: Sessions,
) -> None:
    """500000 kobo inclusive of 7.5%: 465116 net + 34884 tax, refunded in 7 parts of ~71429. Each note's tax
    rounded on its own would be 4983 (4983.46, 4983.25), 34881 in all, and the nets would add up to 465119: more
    than the invoice's. Split on the running total, the notes add up to the invoice exactly."""
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await paid_topup(session_factory, settings, user_id)
    invoice = await invoice_of(session_factory, topup.reference)

    parts = [71_429] * 6 + [AMOUNT - 6 * 71_429]
    for n, part in enumerate(parts):
        assert await refund(session_factory, settings, topup, f"rf-{n}", part) is True

    notes = await notes_of(session_factory, topup.reference)
    assert [note.gross_total for note in notes] == parts
    for note in notes:
        assert note.net_total + note.tax_total == note.gross_total
        assert note.net_total >= 0
        assert note.tax_total >= 0
        # each note's tax is the invoice's rate of its gross, to within a kobo of rounding
        assert abs(note.tax_total * invoice.gross_total - invoice.tax_total * note.gross_total) <= invoice.gross_total
    totals = [sum(getattr(note, f) for note in notes) for f in ("net_total", "tax_total", "gross_total")]
    assert totals == [invoice.net_total, invoice.tax_total, invoice.gross_total]
    assert [note.number for note in notes] == [f"CN-{YEAR}-{k:06d}" for k in range(1, 8)]
    assert await balance(session_factory, user_id) == 0


async def test_a_refund_past_what_is_left_is_capped_and_one_with_nothing_left_is_flagged(
    session_factory: Sessions,
) -> None:
    settings = settings_for("exclusive", "payment")  # charged 537500: 500000 net + 37500 tax
    user_id = (await new_user(session_factory)).id
    async with session_factory() as session:  # credits of the customer's own, so the wallet can give more back
        await WalletService(session=session).credit(user_id, 10**6, kind=EntryKind.TOPUP, reference="paystack:other")
        await session.commit()
    topup = await paid_topup(session_factory, settings, user_id)

    assert await refund(session_factory, settings, topup, "a", 300_000) is True
    assert await refund(session_factory, settings, topup, "b", 300_000) is True  # 237500 left to credit
    assert await refund(session_factory, settings, topup, "c", 1_000) is True  # nothing left

    first, second = await notes_of(session_factory)
    assert (first.net_total, first.tax_total, first.gross_total) == (279_070, 20_930, 300_000)
    assert (second.gross_total, first.tax_total + second.tax_total) == (237_500, 37_500)
    assert first.net_total + second.net_total == 500_000
    assert await flags(session_factory) == [("credit_note_missing", 1_000)]
    # The note says what the invoice allows; the wallet gave back what Paystack refunded, in credits.
    assert await balance(session_factory, user_id) == 10**6 + AMOUNT - (279_070 + 279_070 + 930)
    # A repeat of the flagged refund finds the flag and moves nothing again.
    before = await balance(session_factory, user_id)
    assert await refund(session_factory, settings, topup, "c", 1_000) is True
    assert await balance(session_factory, user_id) == before


# --- once per refund, whatever repeats -----------------------------------------------------------------------


async def test_the_same_refund_twice_is_one_note_and_moves_the_money_once(session_factory: Sessions) -> None:
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await paid_topup(session_factory, settings, user_id)

    assert await refund(session_factory, settings, topup, "9001", 200_000) is True
    assert await refund(session_factory, settings, topup, "9001", 200_000) is True  # a repeat: already booked
    assert await refund(session_factory, settings, topup, "9002", 0) is True  # nothing given back: no note

    [note] = await notes_of(session_factory)
    assert note.gross_total == 200_000
    assert await balance(session_factory, user_id) == AMOUNT - 200_000
    async with session_factory() as session:
        row = await session.scalar(select(Topup).where(Topup.reference == topup.reference))
    assert row is not None
    assert row.refunded_amount == 200_000  # counted once
    assert await note_mails(session_factory) == [note.id]


async def test_a_refund_the_wallet_can_not_cover_is_still_credited_in_full_and_flagged_once(
    session_factory: Sessions,
) -> None:
    """The money left at Paystack whatever the wallet held: the note says what was refunded."""
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await paid_topup(session_factory, settings, user_id)
    async with session_factory() as session:  # the customer spent most of it
        await WalletService(session=session).debit(user_id, 450_000, kind=EntryKind.PURCHASE, reference="spent")
        await session.commit()

    assert await refund(session_factory, settings, topup, "9001", AMOUNT) is False
    assert await refund(session_factory, settings, topup, "9001", AMOUNT) is False  # a repeat answers the same

    [note] = await notes_of(session_factory)
    assert (note.gross_total, note.tax_total) == (AMOUNT, 34_884)
    assert await flags(session_factory) == [("refund_shortfall", 450_000)]
    assert await balance(session_factory, user_id) == 0


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[Sessions]:
    """Sessions on a database of their own with a connection for every concurrent refund: real commits and locks."""
    engine = create_async_engine(isolated_database, pool_size=REFUNDS + 4, max_overflow=0, pool_timeout=60)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_one_refund_applied_ten_times_at_once_is_one_note(committed: Sessions) -> None:
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(committed)).id
    topup = await paid_topup(committed, settings, user_id)

    outcomes = await asyncio.gather(*(refund(committed, settings, topup, "9001", 200_000) for _ in range(10)))

    assert outcomes == [True] * 10
    [note] = await notes_of(committed)
    assert (note.number, note.gross_total) == (f"CN-{YEAR}-000001", 200_000)
    assert await balance(committed, user_id) == AMOUNT - 200_000
    async with committed() as session:
        row = await session.scalar(select(Topup).where(Topup.reference == topup.reference))
        await assert_ledger_balances(session)
    assert row is not None
    assert row.refunded_amount == 200_000


async def test_credit_note_numbers_stay_gapless_under_concurrent_refunds_some_rolled_back(
    committed: Sessions,
) -> None:
    settings = settings_for("exclusive", "payment")
    users = [(await new_user(committed, f"payer{n}@example.com")).id for n in range(4)]
    topups = [await paid_topup(committed, settings, users[n % 4], AMOUNT + n * 100) for n in range(REFUNDS // 2)]
    # Two partial refunds of every top-up, all at once, each also delivered twice, and every fifth rolled back
    # after its note took a number (the number must come back).
    calls = [
        (topup, f"rf-{n}-{half}", topup.charged_amount // 2, (2 * n + half) % 5 == 2)
        for n, topup in enumerate(topups)
        for half in (0, 1)
    ]
    outcomes = await asyncio.gather(
        *(refund(committed, settings, t, rid, amount, fail=fail) for t, rid, amount, fail in calls for _ in (1, 2))
    )
    failed = [call for call in calls if call[3]]
    assert outcomes.count(None) == 2 * len(failed)
    assert all(await asyncio.gather(*(refund(committed, settings, t, rid, amount) for t, rid, amount, _ in failed)))

    notes = await notes_of(committed)
    assert [note.number for note in notes] == [f"CN-{YEAR}-{k:06d}" for k in range(1, REFUNDS + 1)]
    assert len({note.source_reference for note in notes}) == REFUNDS
    for topup in topups:
        mine = [note for note in notes if note.source_reference.startswith(f"refund:rf-{topups.index(topup)}-")]
        assert sum(note.gross_total for note in mine) <= topup.charged_amount
        assert sum(note.tax_total for note in mine) <= topup.tax_amount
    async with committed() as session:
        await assert_ledger_balances(session)


# --- top-ups with no invoice ---------------------------------------------------------------------------------


async def test_a_refund_of_a_mismatched_top_up_issues_no_note_and_is_flagged(session_factory: Sessions) -> None:
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await opened(session_factory, settings, user_id)
    await settle(session_factory, settings, paid(topup, amount=AMOUNT - 1))  # mismatch: no credit, no invoice

    assert await refund(session_factory, settings, topup, "9001", AMOUNT - 1) is False

    assert await notes_of(session_factory) == []
    assert await flags(session_factory) == [("mismatch", AMOUNT - 1), ("refund_uncredited", AMOUNT - 1)]
    assert await note_mails(session_factory) == []


async def test_a_credited_top_up_with_no_invoice_takes_the_money_back_once_and_flags_the_missing_note(
    session_factory: Sessions,
) -> None:
    """A top-up credited before invoices existed: the refund still takes the credits back, and says why no note."""
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(session_factory)).id
    async with session_factory() as session:
        legacy = Topup(reference="tu-legacy", user_id=user_id, amount=AMOUNT, currency="NGN", status="success")
        legacy.charged_amount = AMOUNT
        session.add(legacy)
        await session.flush()
        await WalletService(session=session).credit(
            user_id, AMOUNT, kind=EntryKind.TOPUP, reference="paystack:tu-legacy"
        )
        await session.commit()

    for _ in range(2):
        assert await refund(session_factory, settings, legacy, "9001", 100_000) is True

    assert await notes_of(session_factory) == []
    assert await flags(session_factory) == [("credit_note_missing", 100_000)]
    assert await balance(session_factory, user_id) == AMOUNT - 100_000


# --- disputes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("resolution", "noted"), [("merchant-accepted", True), ("declined", False)])
async def test_a_lost_dispute_issues_a_note_and_a_won_one_none(
    session_factory: Sessions, resolution: str, noted: bool
) -> None:
    settings = settings_for("exclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await paid_topup(session_factory, settings, user_id)
    invoice = await invoice_of(session_factory, topup.reference)

    async with session_factory() as session:
        service = TopupService(session=session, settings=settings)
        assert await service.dispute_opened(dispute_id="7001", reference=topup.reference, amount=None)
        await session.commit()
    assert await notes_of(session_factory) == []  # an open dispute takes nothing back for good
    for _ in range(2):  # resolved, and the resolution reported again
        async with session_factory() as session:
            service = TopupService(session=session, settings=settings)
            await service.dispute_resolved(
                dispute_id="7001", reference=topup.reference, resolution=resolution, amount=topup.charged_amount
            )
            await session.commit()

    notes = await notes_of(session_factory)
    if not noted:
        assert notes == []
        assert await balance(session_factory, user_id) == AMOUNT
        return
    [note] = notes
    assert (note.kind, note.source_reference, note.invoice_number) == ("dispute", "dispute:7001", invoice.number)
    assert (note.net_total, note.tax_total, note.gross_total) == (AMOUNT, 37_500, 537_500)
    assert await balance(session_factory, user_id) == 0


# --- immutable -------------------------------------------------------------------------------------------------


async def test_the_database_and_the_service_refuse_to_change_a_note(session_factory: Sessions) -> None:
    settings = settings_for("inclusive", "payment")
    user_id = (await new_user(session_factory)).id
    topup = await paid_topup(session_factory, settings, user_id)
    await refund(session_factory, settings, topup, "9001", 100_000)
    [note] = await notes_of(session_factory)

    async with session_factory() as session:
        for statement in (
            "UPDATE credit_notes SET gross_total = 1, net_total = 1, tax_total = 0",
            "UPDATE credit_notes SET buyer_email = 'mallory@example.com'",
            "DELETE FROM credit_notes",
            "TRUNCATE credit_notes",
        ):
            with pytest.raises(DBAPIError, match="immutable"):
                async with session.begin_nested():
                    await session.execute(text(statement))
        service = CreditNoteService(session, settings=settings)
        with pytest.raises(InvoiceImmutable):
            await service.update({"gross_total": 1}, item_id=note.id)
        with pytest.raises(InvoiceImmutable):
            await service.delete(note.id)
        with pytest.raises(TypeError):
            await service.create(note)
        stored = await session.get(CreditNote, note.id, populate_existing=True)
    assert stored is not None
    assert stored.gross_total == 100_000


def test_dev_mode_issues_notes_and_refuses_changes_on_sqlite(tmp_path: Path) -> None:
    upgraded = run_cli("database", "upgrade", env=settings_env(DATABASE_URL="", DATA_DIR=str(tmp_path)))
    assert upgraded.returncode == 0, upgraded.stderr

    async def scenario() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'namaskah.sqlite3'}")
        sessions = create_session_factory(engine)
        settings = settings_for("inclusive", "payment")
        try:
            user_id = (await new_user(sessions)).id
            topup = await paid_topup(sessions, settings, user_id)
            assert await refund(sessions, settings, topup, "a", 250_000) is True
            assert await refund(sessions, settings, topup, "b", 250_000) is True
            notes = await notes_of(sessions)
            assert [n.number for n in notes] == [f"CN-{YEAR}-000001", f"CN-{YEAR}-000002"]
            assert sum(n.tax_total for n in notes) == 34_884
            async with sessions() as session:
                for statement in ("UPDATE credit_notes SET gross_total = 0", "DELETE FROM credit_notes"):
                    with pytest.raises(DBAPIError, match="issued credit notes are immutable"):
                        await session.execute(text(statement))
                    await session.rollback()
                assert await session.scalar(select(func.sum(CreditNote.gross_total))) == AMOUNT
        finally:
            await engine.dispose()

    asyncio.run(scenario())


# --- mailed by the invoice job ---------------------------------------------------------------------------------


async def test_the_invoice_job_mails_the_note_with_its_pdf(session_factory: Sessions, tmp_path: Path) -> None:
    settings = make_settings(TAX_MODE="inclusive", TAX_POINT="payment", DATA_DIR=str(tmp_path))
    user_id = (await new_user(session_factory, "ada@example.com")).id
    topup = await paid_topup(session_factory, settings, user_id)
    await refund(session_factory, settings, topup, "9001", AMOUNT)
    [note] = await notes_of(session_factory)
    invoice = await invoice_of(session_factory, topup.reference)

    job = EmailInvoice(invoice_id=note.id, credit_note=True)
    assert await invoice_worker.email(transactions(session_factory), settings, job) == "file"

    [path] = list((tmp_path / "mail").glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert (message["To"], message["Subject"]) == ("ada@example.com", f"Your Namaskah SMS credit note {note.number}")
    assert invoice.number in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == f"{note.number}.pdf"
    text_ = pdf_text(attachment.get_content())
    assert note.number in text_
    assert invoice.number in text_


# --- the API: listed, downloaded, the owner's only -------------------------------------------------------------


@pytest.fixture
def fake() -> FakePaystack:
    return FakePaystack()


@pytest.fixture
async def client(
    session_factory: Sessions, fake: FakePaystack, stub_broker: StubBroker
) -> AsyncIterator[httpx.AsyncClient]:
    app = paystack_app(session_factory, fake, stub_broker, TAX_MODE="exclusive")
    async with serve_in_loop(app) as test_client:
        yield test_client
    await app.state.paystack.aclose()
    assert fake.violations == []


async def test_a_refund_webhook_makes_a_note_its_owner_lists_and_downloads_and_nobody_else_can(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    settings = make_settings(TAX_MODE="exclusive", PAYSTACK_SECRET_KEY=SECRET_KEY)
    headers, user_id = await customer(client, session_factory)
    tx = fake.pay((await start(client, headers))["reference"])
    await deliver(client, charge_success(tx))
    await deliver(client, refund_processed(tx.reference, 268_750))  # half of 537500
    await deliver(client, refund_processed(tx.reference, 268_750))  # redelivered
    await deliver(client, dispute("charge.dispute.create", tx, refund_amount=268_750))
    await deliver(client, dispute("charge.dispute.resolve", tx, refund_amount=268_750, resolution="lost"))
    await run_jobs(session_factory, settings)
    assert await balance(session_factory, user_id) == 0

    [invoice] = (await client.get("/v1/billing/invoices", headers=headers)).json()["items"]
    listed = (await client.get("/v1/billing/credit-notes", headers=headers)).json()
    assert listed["total"] == 2
    dispute_note, refund_note = listed["items"]  # newest first
    assert (refund_note["kind"], dispute_note["kind"]) == ("refund", "dispute")
    for item in listed["items"]:
        assert (item["invoice_id"], item["invoice_number"]) == (invoice["id"], invoice["number"])
        assert (item["net_total"], item["tax_total"], item["gross_total"]) == (250_000, 18_750, 268_750)
        assert item["tax_label"] == "VAT 7.5%"
    assert refund_note["number"] == f"CN-{YEAR}-000001"

    pdf = await client.get(refund_note["pdf_url"], headers=headers)
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    assert pdf.headers["content-disposition"] == f'attachment; filename="{refund_note["number"]}.pdf"'
    shown = " ".join(pdf_text(pdf.content).split())
    for expected in (
        "CREDIT NOTE",
        refund_note["number"],
        invoice["number"],
        "VAT 7.5% NGN 187.50",
        "NGN 2,500.00",
        "Total credited NGN 2,687.50",
    ):
        assert expected in shown, expected

    other, _ = await customer(client, session_factory, "mallory@example.com")
    assert (await client.get("/v1/billing/credit-notes", headers=other)).json() == {"items": [], "total": 0}
    for path in (refund_note["pdf_url"], f"/v1/billing/credit-notes/{uuid.uuid4()}.pdf", "/v1/billing/credit-notes/x"):
        stranger = await client.get(path, headers=other)
        assert (stranger.status_code, stranger.json()["code"]) == (404, "credit_note_not_found"), path
    # An invoice id is no credit note, and the invoice routes are as they were.
    assert (await client.get(f"/v1/billing/credit-notes/{invoice['id']}.pdf", headers=headers)).status_code == 404
    assert (await client.get(invoice["pdf_url"], headers=headers)).status_code == 200
