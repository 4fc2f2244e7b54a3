"""Rentals under real commits: concurrent sweeps renew once, concurrent releases refund once, and concurrent
extensions each charge exactly what moved the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.rentals.schemas import RentalCreate
from namaskah.domain.rentals.service import RentalNotActive, RentalService
from namaskah.domain.wallet.service import WalletService
from namaskah.providers.simulator import SimulatorProvider
from tests.integration.test_catalog import RATES, synced
from tests.integration.test_rentals import acquired, load, rental_price
from tests.integration.test_verifications import count_references, fund, new_user

Sessions = async_sessionmaker[AsyncSession]
DAYS = SimulatorProvider.rental_days


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[Sessions]:
    """Sessions on a database of their own with a real pool: every commit and row lock is real."""
    engine = create_async_engine(isolated_database, pool_size=20, max_overflow=0, pool_timeout=60)
    sessions = create_session_factory(engine)
    await synced(sessions)
    yield sessions
    await engine.dispose()


async def active_rental(sessions: Sessions, *, auto_renew: bool = False, funds: int = 0) -> tuple[uuid.UUID, int]:
    """An active 1-day rental on `pro` with `funds` left in the wallet after paying; (rental id, price per day)."""
    user_id = (await new_user(sessions)).id
    per_day = await rental_price(sessions, 1)
    await fund(sessions, user_id, per_day + funds)
    async with sessions() as session:
        service = RentalService(session=session, rates=RATES, rental_days=DAYS)
        rental = await service.rent(user_id, "pro", RentalCreate(service="whatsapp", days=1, auto_renew=auto_renew))
        await session.commit()
    await acquired(sessions, rental.id)
    return rental.id, per_day


async def in_transaction(sessions: Sessions, work):  # type: ignore[no-untyped-def]
    """Committed on success, rolled back on an error (which is answered instead of raised)."""
    async with sessions() as session:
        try:
            result = await work(RentalService(session=session, rates=RATES, rental_days=DAYS))
        except RentalNotActive as exc:
            await session.rollback()
            return exc.code
        await session.commit()
        return result


async def test_concurrent_sweeps_renew_once(committed: Sessions) -> None:
    rental_id, _ = await active_rental(committed, auto_renew=True, funds=10**6)
    ends_at = (await load(committed, rental_id)).ends_at
    now = ends_at - timedelta(minutes=30)

    outcomes = await asyncio.gather(
        *(in_transaction(committed, lambda s: s.renew_due(now, timedelta(hours=1))) for _ in range(8))
    )

    assert sorted(outcomes) == [(0, 0)] * 7 + [(1, 0)]
    assert (await load(committed, rental_id)).ends_at == ends_at + timedelta(days=1)
    assert await count_references(committed, f"rental:{rental_id}:renew:{ends_at.isoformat()}") == 1


async def test_concurrent_releases_refund_once(committed: Sessions) -> None:
    user_id = (await new_user(committed, "rel@example.com")).id
    per_day = await rental_price(committed, 7) // 7
    await fund(committed, user_id, 7 * per_day)
    async with committed() as session:
        service = RentalService(session=session, rates=RATES, rental_days=DAYS)
        rental = await service.rent(user_id, "pro", RentalCreate(service="whatsapp", days=7))
        await session.commit()
    await acquired(committed, rental.id)

    outcomes = await asyncio.gather(
        *(in_transaction(committed, lambda s: s.release(user_id, rental.id)) for _ in range(8))
    )

    assert sum(1 for outcome in outcomes if outcome == "rental_not_active") == 7
    assert await count_references(committed, f"rental:{rental.id}:release") == 1
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == 6 * per_day


async def test_concurrent_extensions_charge_what_moved_the_end(committed: Sessions) -> None:
    rental_id, per_day = await active_rental(committed, funds=0)
    owner = (await load(committed, rental_id)).user_id
    await fund(committed, owner, 6 * per_day)
    before = await load(committed, rental_id)

    outcomes = await asyncio.gather(
        *(in_transaction(committed, lambda s: s.extend(owner, rental_id, 1)) for _ in range(6))
    )

    extended = sum(1 for outcome in outcomes if outcome != "rental_not_active")
    assert extended >= 1
    after = await load(committed, rental_id)
    assert after.ends_at - before.ends_at == timedelta(days=extended)
    assert after.extensions == extended
    async with committed() as session:
        assert await WalletService(session=session).balance_of(owner) == (6 - extended) * per_day
