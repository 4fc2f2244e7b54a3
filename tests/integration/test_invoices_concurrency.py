"""Invoice numbers under real commits: concurrent payments, some rolled back, leave exactly 1..N; twins of one
payment make one invoice; each year counts on its own; and numbering and immutability work on SQLite (dev mode)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.accounts.models import User
from namaskah.domain.invoices.models import Invoice, InvoiceCounter
from namaskah.domain.invoices.service import InvoiceService, LineItem
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.outbox.models import OutboxMessage
from tests.support.databases import make_settings, run_cli, settings_env

Sessions = async_sessionmaker[AsyncSession]
SETTINGS = make_settings()
PAYMENTS = 50


class PaymentFailed(Exception):
    """Something after the invoice went wrong: the whole payment transaction rolls back."""


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[Sessions]:
    """Sessions on a database of their own with a connection for every payment: commits and locks are real."""
    engine = create_async_engine(isolated_database, pool_size=PAYMENTS, max_overflow=0, pool_timeout=60)
    yield create_session_factory(engine)
    await engine.dispose()


async def new_users(sessions: Sessions, count: int) -> list[uuid.UUID]:
    async with sessions() as session:
        users = [User(email=f"payer{n}@example.com", password_hash="not-a-real-hash") for n in range(count)]
        session.add_all(users)
        await session.commit()
        return [user.id for user in users]


async def pay(
    sessions: Sessions,
    user_id: uuid.UUID,
    reference: str,
    *,
    fail: bool = False,
    now: datetime | None = None,
    jitter: random.Random | None = None,
) -> str | None:
    """A payment as the billing area records it: credit the wallet, issue the invoice last, commit. With `fail`,
    something breaks after the invoice took its number, and everything rolls back."""
    try:
        async with sessions() as session, session.begin():
            await WalletService(session=session).credit(user_id, 10_000, kind=EntryKind.TOPUP, reference=reference)
            invoice = await InvoiceService(session, settings=SETTINGS).issue(
                user_id=user_id,
                kind="topup",
                source_reference=reference,
                lines=[LineItem("Wallet top-up", 10_000)],
                currency="NGN",
                now=now,
            )
            # Hold the year's lock a moment, as a real transaction would, so the others pile up behind it.
            await asyncio.sleep(jitter.uniform(0, 0.01) if jitter else 0)
            if fail:
                raise PaymentFailed(invoice.number)
            return invoice.number
    except PaymentFailed:
        return None


async def scalar(sessions: Sessions, query: object) -> object:
    async with sessions() as session:
        return await session.scalar(query)  # type: ignore[call-overload]


async def test_fifty_concurrent_payments_some_rolled_back_leave_no_gap(committed: Sessions) -> None:
    users = await new_users(committed, 5)
    jitter = random.Random(6)  # fixed seed: a failure can be replayed
    failing = set(jitter.sample(range(PAYMENTS), 12))
    results = await asyncio.gather(
        *(pay(committed, users[n % 5], f"paystack:{n}", fail=n in failing, jitter=jitter) for n in range(PAYMENTS))
    )
    committed_numbers = [number for number in results if number is not None]
    total = PAYMENTS - len(failing)
    assert len(committed_numbers) == total
    year = datetime.now(UTC).year
    assert sorted(committed_numbers) == [f"INV-{year}-{n:06d}" for n in range(1, total + 1)]
    async with committed() as session:
        sequences = (await session.scalars(select(Invoice.sequence).order_by(Invoice.sequence))).all()
        references = set((await session.scalars(select(Invoice.source_reference))).all())
        last = await session.scalar(select(InvoiceCounter.last_number).where(InvoiceCounter.year == year))
        mails = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.actor == "invoices.email")
        )
    assert sequences == list(range(1, total + 1))
    assert references == {f"paystack:{n}" for n in range(PAYMENTS) if n not in failing}
    assert last == total
    assert mails == total  # rolled-back payments requested no mail either


async def test_concurrent_twins_of_one_payment_make_one_invoice(committed: Sessions) -> None:
    (user,) = await new_users(committed, 1)

    async def issue(reference: str) -> uuid.UUID:
        async with committed() as session, session.begin():
            invoice = await InvoiceService(session, settings=SETTINGS).issue(
                user_id=user, kind="topup", source_reference=reference, lines=[("Top-up", 5_000, 1)], currency="NGN"
            )
            await asyncio.sleep(0.005)
            return invoice.id

    references = ["paystack:same"] * 15 + [f"paystack:other-{n}" for n in range(15)]
    random.Random(7).shuffle(references)
    ids = await asyncio.gather(*(issue(reference) for reference in references))
    twins = {invoice_id for invoice_id, reference in zip(ids, references, strict=True) if reference == "paystack:same"}
    assert len(twins) == 1
    async with committed() as session:
        sequences = (await session.scalars(select(Invoice.sequence).order_by(Invoice.sequence))).all()
    assert sequences == list(range(1, 17))  # 16 payments, 16 numbers: the twins took none


async def test_each_year_counts_on_its_own_under_concurrency(committed: Sessions) -> None:
    users = await new_users(committed, 2)
    december, january = datetime(2030, 12, 31, 23, 59, tzinfo=UTC), datetime(2031, 1, 1, 0, 1, tzinfo=UTC)
    numbers = await asyncio.gather(
        *(
            pay(committed, users[n % 2], f"paystack:y{n}", now=december if n % 2 else january, fail=n % 7 == 3)
            for n in range(24)
        )
    )
    kept = [(n, number) for n, number in enumerate(numbers) if number is not None]
    decembers = sorted(number for n, number in kept if n % 2)
    januarys = sorted(number for n, number in kept if not n % 2)
    assert decembers == [f"INV-2030-{k:06d}" for k in range(1, len(decembers) + 1)]
    assert januarys == [f"INV-2031-{k:06d}" for k in range(1, len(januarys) + 1)]
    assert len(decembers) + len(januarys) == 24 - len([n for n in range(24) if n % 7 == 3])


def test_dev_mode_numbers_invoices_and_refuses_changes_on_sqlite(tmp_path: Path) -> None:
    upgraded = run_cli("database", "upgrade", env=settings_env(DATABASE_URL="", DATA_DIR=str(tmp_path)))
    assert upgraded.returncode == 0, upgraded.stderr

    async def scenario() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'namaskah.sqlite3'}")
        sessions = create_session_factory(engine)
        try:
            (user,) = await new_users(sessions, 1)
            numbers = []
            for n, moment in enumerate((datetime(2030, 6, 1, tzinfo=UTC),) * 3 + (datetime(2031, 6, 1, tzinfo=UTC),)):
                async with sessions() as session, session.begin():
                    service = InvoiceService(session, settings=SETTINGS)
                    invoice = await service.issue(
                        user_id=user, kind="topup", source_reference=f"r{n}", lines=[("Top-up", 10_750)],
                        currency="NGN", now=moment,
                    )  # fmt: skip
                    numbers.append((invoice.number, invoice.net_total, invoice.tax_total))
            assert numbers == [
                ("INV-2030-000001", 10_000, 750),
                ("INV-2030-000002", 10_000, 750),
                ("INV-2030-000003", 10_000, 750),
                ("INV-2031-000001", 10_000, 750),
            ]
            async with sessions() as session:
                for statement in ("UPDATE invoices SET gross_total = 0", "DELETE FROM invoice_lines"):
                    with pytest.raises(DBAPIError, match="issued invoices are immutable"):
                        await session.execute(text(statement))
                    await session.rollback()
                assert await session.scalar(select(func.sum(Invoice.gross_total))) == 4 * 10_750
        finally:
            await engine.dispose()

    asyncio.run(scenario())
