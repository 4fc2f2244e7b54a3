"""The ledger under real commits: balances never go negative under contention, references book once, every
transaction balances, and the service works on SQLite (dev mode) as on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.accounts.models import User
from namaskah.domain.wallet.models import (
    SYSTEM_ACCOUNT_IDS,
    EntryKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    SystemAccount,
)
from namaskah.domain.wallet.service import Booking, InsufficientCredits, ReferenceConflict, WalletService
from tests.support.databases import run_cli, settings_env

PRICE = 1_500  # kobo per purchase


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a database of their own with a real pool: every commit is real, so are the row locks."""
    engine = create_async_engine(isolated_database, pool_size=25, max_overflow=0, pool_timeout=60)
    yield create_session_factory(engine)
    await engine.dispose()


async def new_user(sessions: async_sessionmaker[AsyncSession], email: str = "ada@example.com") -> uuid.UUID:
    async with sessions() as session:
        user = User(email=email, password_hash="not-a-real-hash")
        session.add(user)
        await session.commit()
        return user.id


async def book(sessions: async_sessionmaker[AsyncSession], operation: str, *args, **kwargs) -> Booking:
    """One booking in a transaction of its own, committed."""
    async with sessions() as session:
        booking = await getattr(WalletService(session=session), operation)(*args, **kwargs)
        await session.commit()
        return booking


async def attempt_purchase(sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, reference: str) -> str:
    try:
        await book(sessions, "debit", user_id, PRICE, kind=EntryKind.PURCHASE, reference=reference)
    except InsufficientCredits:
        return "insufficient"
    return "booked"


async def assert_ledger_balances(session: AsyncSession) -> None:
    """Every transaction's entries sum to zero (so does the whole ledger), each has one wallet side, and every
    wallet's cached balance equals the sum of its entries."""
    unbalanced = await session.execute(
        select(LedgerTransaction.reference, func.sum(LedgerEntry.amount), func.count())
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .group_by(LedgerTransaction.reference)
        .having((func.sum(LedgerEntry.amount) != 0) | (func.count() != 2))
    )
    assert unbalanced.all() == []
    assert await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))) == 0
    drift = await session.execute(
        select(LedgerAccount.id, LedgerAccount.balance, func.coalesce(func.sum(LedgerEntry.amount), 0))
        .outerjoin(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
        .where(LedgerAccount.user_id.is_not(None))
        .group_by(LedgerAccount.id, LedgerAccount.balance)
        .having(LedgerAccount.balance != func.coalesce(func.sum(LedgerEntry.amount), 0))
    )
    assert drift.all() == []


async def wallet_entries(session: AsyncSession, user_id: uuid.UUID) -> list[LedgerEntry]:
    rows = await session.scalars(
        select(LedgerEntry).join(LedgerAccount).where(LedgerAccount.user_id == user_id).order_by(LedgerEntry.sequence)
    )
    return list(rows.all())


async def test_200_concurrent_purchases_against_a_balance_for_50(committed) -> None:
    user_id = await new_user(committed)
    await book(committed, "credit", user_id, 50 * PRICE, kind=EntryKind.TOPUP, reference="paystack:T50")

    outcomes = await asyncio.gather(*(attempt_purchase(committed, user_id, f"purchase:{i}") for i in range(200)))

    assert outcomes.count("booked") == 50
    assert outcomes.count("insufficient") == 150
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == 0
        entries = await wallet_entries(session, user_id)
        # One top-up and exactly 50 purchases, numbered without gaps; replaying them never dips below zero.
        assert [entry.sequence for entry in entries] == list(range(1, 52))
        running = 0
        for entry in entries:
            running += entry.amount
            assert entry.balance_after == running
            assert running >= 0
        assert running == 0
        # The refused purchases left nothing behind: no transaction, no entry.
        references = set(await session.scalars(select(LedgerTransaction.reference)))
        assert len(references) == 51
        assert {f"purchase:{i}" for i, outcome in enumerate(outcomes) if outcome == "booked"} | {
            "paystack:T50"
        } == references
        revenue = await session.scalar(
            select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.account_id == SYSTEM_ACCOUNT_IDS[SystemAccount.REVENUE]
            )
        )
        assert revenue == 50 * PRICE
        await assert_ledger_balances(session)


async def test_one_reference_booked_concurrently_books_once(committed) -> None:
    user_id = await new_user(committed)
    await book(committed, "credit", user_id, 10 * PRICE, kind=EntryKind.TOPUP, reference="paystack:T10")

    bookings = await asyncio.gather(
        *(
            book(committed, "debit", user_id, PRICE, kind=EntryKind.PURCHASE, reference="verification:same")
            for _ in range(12)
        )
    )

    assert sorted(booking.created for booking in bookings) == [False] * 11 + [True]
    assert {booking.entry.id for booking in bookings} == {bookings[0].entry.id}
    assert {booking.entry.balance_after for booking in bookings} == {9 * PRICE}
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == 9 * PRICE
        count = select(func.count()).select_from(LedgerTransaction)
        assert await session.scalar(count.where(LedgerTransaction.reference == "verification:same")) == 1
        await assert_ledger_balances(session)


async def test_a_twin_of_a_purchase_that_emptied_the_wallet_is_already_booked_not_refused(committed) -> None:
    """The reference is claimed before the balance is touched, so the loser of the race learns it was booked,
    not that it lacks credits."""
    user_id = await new_user(committed)
    await book(committed, "credit", user_id, PRICE, kind=EntryKind.TOPUP, reference="paystack:T1")
    bookings = await asyncio.gather(
        *(book(committed, "debit", user_id, PRICE, kind=EntryKind.PURCHASE, reference="verification:x") for _ in "ab")
    )
    assert sorted(booking.created for booking in bookings) == [False, True]
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == 0


async def test_concurrent_first_credits_open_one_wallet(committed) -> None:
    user_id = await new_user(committed)
    refunds = [
        book(committed, "credit", user_id, 100 + i, kind=EntryKind.REFUND, reference=f"refund:{i}") for i in range(20)
    ]
    await asyncio.gather(*refunds)
    async with committed() as session:
        wallets = await session.scalar(
            select(func.count()).select_from(LedgerAccount).where(LedgerAccount.user_id == user_id)
        )
        assert wallets == 1
        assert await WalletService(session=session).balance_of(user_id) == sum(100 + i for i in range(20))
        assert [entry.sequence for entry in await wallet_entries(session, user_id)] == list(range(1, 21))
        await assert_ledger_balances(session)


async def test_a_refused_debit_leaves_nothing_even_when_the_caller_commits(session_factory) -> None:
    user_id = await new_user(session_factory)
    async with session_factory() as session:
        wallet = WalletService(session=session)
        await wallet.credit(user_id, 100, kind=EntryKind.GRANT, reference="grant:a")
        with pytest.raises(InsufficientCredits) as refused:
            await wallet.debit(user_id, 101, kind=EntryKind.PURCHASE, reference="verification:big")
        assert refused.value.status_code == 402
        await session.commit()
    async with session_factory() as session:
        assert await WalletService(session=session).balance_of(user_id) == 100
        references = (await session.scalars(select(LedgerTransaction.reference))).all()
        assert references == ["grant:a"]
    # The reference was never taken: once the money is there, the same purchase goes through.
    await book(session_factory, "credit", user_id, 1, kind=EntryKind.TOPUP, reference="paystack:top")
    booking = await book(session_factory, "debit", user_id, 101, kind=EntryKind.PURCHASE, reference="verification:big")
    assert (booking.created, booking.entry.balance_after) == (True, 0)


async def test_a_user_without_a_wallet_can_not_spend(session_factory) -> None:
    user_id = await new_user(session_factory)
    with pytest.raises(InsufficientCredits):
        await book(session_factory, "debit", user_id, 1, kind=EntryKind.PURCHASE, reference="verification:1")
    async with session_factory() as session:
        assert await WalletService(session=session).balance_of(user_id) == 0


async def test_replaying_a_reference_answers_the_first_booking(session_factory) -> None:
    ada = await new_user(session_factory)
    grace = await new_user(session_factory, "grace@example.com")
    first = await book(session_factory, "credit", ada, 500, kind=EntryKind.TOPUP, reference="paystack:R1")
    again = await book(session_factory, "credit", ada, 500, kind=EntryKind.TOPUP, reference="paystack:R1")
    assert (first.created, again.created) == (True, False)
    assert (again.entry.id, again.transaction.id) == (first.entry.id, first.transaction.id)
    assert again.entry.balance_after == 500
    for other in (
        {"user_id": grace, "amount": 500, "kind": EntryKind.TOPUP},
        {"user_id": ada, "amount": 501, "kind": EntryKind.TOPUP},
        {"user_id": ada, "amount": 500, "kind": EntryKind.REFUND},
    ):
        with pytest.raises(ReferenceConflict):
            await book(session_factory, "credit", other.pop("user_id"), reference="paystack:R1", **other)
    with pytest.raises(ReferenceConflict):
        await book(session_factory, "debit", ada, 500, kind=EntryKind.PURCHASE, reference="paystack:R1")
    async with session_factory() as session:
        assert await WalletService(session=session).balance_of(ada) == 500
        assert await WalletService(session=session).balance_of(grace) == 0
        await assert_ledger_balances(session)


@pytest.mark.parametrize("amount", [0, -100, True, 1.5])
async def test_amounts_must_be_positive_whole_minor_units(session_factory, amount) -> None:
    user_id = await new_user(session_factory)
    async with session_factory() as session:
        wallet = WalletService(session=session)
        await wallet.credit(user_id, 1_000, kind=EntryKind.GRANT, reference="grant:seed")
        with pytest.raises(ValueError, match="positive"):
            await wallet.debit(user_id, amount, kind=EntryKind.PURCHASE, reference="verification:v")
        with pytest.raises(ValueError, match="positive"):
            await wallet.credit(user_id, amount, kind=EntryKind.REFUND, reference="refund:r")
        assert await wallet.balance_of(user_id) == 1_000


async def test_kinds_go_one_way_and_references_are_bounded(session_factory) -> None:
    user_id = await new_user(session_factory)
    async with session_factory() as session:
        wallet = WalletService(session=session)
        with pytest.raises(ValueError, match="not a debit"):
            await wallet.debit(user_id, 1, kind=EntryKind.REFUND, reference="x")
        with pytest.raises(ValueError, match="not a credit"):
            await wallet.credit(user_id, 1, kind=EntryKind.PURCHASE, reference="y")
        for reference in ("", "r" * 129):
            with pytest.raises(ValueError, match="reference"):
                await wallet.credit(user_id, 1, kind=EntryKind.TOPUP, reference=reference)
        assert (await wallet.credit(user_id, 1, kind=EntryKind.TOPUP, reference="r" * 128)).created


async def test_the_database_refuses_a_negative_wallet(session_factory) -> None:
    user_id = await new_user(session_factory)
    await book(session_factory, "credit", user_id, 10, kind=EntryKind.GRANT, reference="grant:10")
    async with session_factory() as session:
        with pytest.raises(IntegrityError, match="balance_not_negative"):
            await session.execute(update(LedgerAccount).where(LedgerAccount.user_id == user_id).values(balance=-1))


async def test_the_ledger_works_on_sqlite_as_in_dev_mode(tmp_path: Path) -> None:
    upgraded = run_cli("database", "upgrade", env=settings_env(DATABASE_URL="", DATA_DIR=str(tmp_path)))
    assert upgraded.returncode == 0, upgraded.stderr
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'namaskah.sqlite3'}")
    sessions = create_session_factory(engine)
    try:
        user_id = await new_user(sessions)
        assert (await book(sessions, "credit", user_id, 300, kind=EntryKind.TOPUP, reference="paystack:S")).created
        assert not (await book(sessions, "credit", user_id, 300, kind=EntryKind.TOPUP, reference="paystack:S")).created
        spent = await book(sessions, "debit", user_id, 200, kind=EntryKind.PURCHASE, reference="verification:s")
        assert spent.entry.balance_after == 100
        with pytest.raises(InsufficientCredits):
            await book(sessions, "debit", user_id, 101, kind=EntryKind.PURCHASE, reference="verification:t")
        async with sessions() as session:
            history, total = await WalletService(session=session).history(user_id, limit=10, offset=0)
            assert total == 2
            assert [(entry.amount, transaction.kind) for entry, transaction in history] == [
                (-200, "purchase"),
                (300, "topup"),
            ]
            await assert_ledger_balances(session)
    finally:
        await engine.dispose()
