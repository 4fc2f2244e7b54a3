"""Verifications under real commits: one key charges once, a balance for 50 sells 50, and of a cancel racing an
expiry exactly one wins and refunds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.db.base import utcnow
from namaskah.db.engine import create_session_factory
from namaskah.domain.verifications.models import Verification
from namaskah.domain.verifications.schemas import VerificationCreate
from namaskah.domain.verifications.service import NotCancellable, VerificationService
from namaskah.domain.wallet.models import LedgerTransaction
from namaskah.domain.wallet.service import InsufficientCredits, WalletService
from namaskah.lib.outbox.models import OutboxMessage
from tests.integration.test_catalog import RATES, synced
from tests.integration.test_verifications import fund, new_user, price_of
from tests.integration.test_wallet_ledger import assert_ledger_balances

Sessions = async_sessionmaker[AsyncSession]
WHATSAPP = VerificationCreate(service="whatsapp")


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[Sessions]:
    """Sessions on a database of their own with a real pool: every commit and row lock is real."""
    engine = create_async_engine(isolated_database, pool_size=25, max_overflow=0, pool_timeout=60)
    sessions = create_session_factory(engine)
    await synced(sessions)
    yield sessions
    await engine.dispose()


async def purchase(sessions: Sessions, user_id: uuid.UUID, key: str | None = None) -> uuid.UUID | str:
    """One purchase in a request-like transaction: committed on success, rolled back on an error."""
    async with sessions() as session:
        try:
            verification = await VerificationService(session=session, rates=RATES).purchase(
                user_id, "free", WHATSAPP, key
            )
        except InsufficientCredits:
            await session.rollback()
            return "insufficient"
        await session.commit()
        return verification.id


async def count(sessions: Sessions, model: type[object], *conditions: object) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0  # type: ignore[arg-type]


async def test_concurrent_purchases_with_one_key_charge_once(committed: Sessions) -> None:
    user_id = (await new_user(committed)).id
    price = await price_of(committed, tier="free")
    await fund(committed, user_id, 10 * price)

    outcomes = await asyncio.gather(*(purchase(committed, user_id, "retry-me") for _ in range(12)))

    assert len(set(outcomes)) == 1
    assert isinstance(outcomes[0], uuid.UUID)
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == 9 * price
        await assert_ledger_balances(session)
    assert await count(committed, Verification) == 1
    assert await count(committed, LedgerTransaction, LedgerTransaction.kind == "purchase") == 1
    assert await count(committed, OutboxMessage, OutboxMessage.actor == "verifications.acquire") == 1


async def test_200_concurrent_purchases_against_a_balance_for_50(committed: Sessions) -> None:
    user_id = (await new_user(committed)).id
    price = await price_of(committed, tier="free")
    await fund(committed, user_id, 50 * price)

    outcomes = await asyncio.gather(*(purchase(committed, user_id) for _ in range(200)))

    assert sum(isinstance(outcome, uuid.UUID) for outcome in outcomes) == 50
    assert outcomes.count("insufficient") == 150
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == 0
        await assert_ledger_balances(session)
    assert await count(committed, Verification) == 50
    assert await count(committed, LedgerTransaction, LedgerTransaction.kind == "purchase") == 50
    assert await count(committed, OutboxMessage, OutboxMessage.actor == "verifications.acquire") == 50


async def attempt(sessions: Sessions, operation: str, user_id: uuid.UUID, verification_id: uuid.UUID) -> str:
    async with sessions() as session:
        service = VerificationService(session=session)
        try:
            if operation == "cancel":
                await service.cancel(user_id, verification_id)
            elif not await service.expire_due(utcnow(), only=verification_id):
                return "missed"
        except NotCancellable:
            return "missed"
        await session.commit()
        return operation


async def test_cancel_racing_expiry_refunds_exactly_once(committed: Sessions) -> None:
    user_id = (await new_user(committed)).id
    price = await price_of(committed, tier="free")
    await fund(committed, user_id, 10 * price)
    bought = [await purchase(committed, user_id) for _ in range(10)]
    ids = [b for b in bought if isinstance(b, uuid.UUID)]
    async with committed() as session:
        # Every window already ended, so the sweeper may expire what the customer is cancelling.
        await session.execute(update(Verification).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()

    races = [
        asyncio.gather(attempt(committed, "cancel", user_id, i), attempt(committed, "expire", user_id, i)) for i in ids
    ]
    results = await asyncio.gather(*races)

    for verification_id, outcome in zip(ids, results, strict=True):
        assert sorted(outcome).count("missed") == 1, outcome
        winner = next(o for o in outcome if o != "missed")
        async with committed() as session:
            status = await session.scalar(select(Verification.status).where(Verification.id == verification_id))
        assert status == {"cancel": "cancelled", "expire": "expired"}[winner]
        refund = f"verification:{verification_id}:refund"
        assert await count(committed, LedgerTransaction, LedgerTransaction.reference == refund) == 1
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == 10 * price
        await assert_ledger_balances(session)
