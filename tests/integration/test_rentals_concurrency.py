"""Rentals under real commits: concurrent sweeps renew once, concurrent releases refund once, concurrent
extensions each charge exactly what moved the end, and the pending timeout racing assignment settles each rental
one way, refunded at most once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.db.base import utcnow
from namaskah.db.engine import create_session_factory
from namaskah.domain.rentals import worker
from namaskah.domain.rentals.jobs import AcquireRental
from namaskah.domain.rentals.schemas import RentalCreate
from namaskah.domain.rentals.service import RentalNotActive, RentalService
from namaskah.domain.wallet.service import WalletService
from namaskah.providers.simulator import SimulatorProvider
from namaskah.providers.simulator_models import SimulatorReservation
from tests.integration.test_catalog import RATES, synced
from tests.integration.test_rentals import acquired, load, rental_price
from tests.integration.test_verifications import count_references, fund, new_user, transactions
from tests.integration.test_wallet_ledger import assert_ledger_balances

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


async def test_the_pending_timeout_racing_assignment_refunds_or_assigns_each_rental_once(committed: Sessions) -> None:
    user_id = (await new_user(committed, "race@example.com")).id
    price = await rental_price(committed, 1)
    await fund(committed, user_id, 8 * price)
    async with committed() as session:
        service = RentalService(session=session, rates=RATES, rental_days=DAYS)
        ids = [(await service.rent(user_id, "pro", RentalCreate(service="whatsapp", days=1))).id for _ in range(8)]
        await session.commit()
    later = utcnow() + timedelta(hours=1)
    simulator, tx = SimulatorProvider(committed), transactions(committed)

    # Every acquire job and three sweeps (three API processes) at once.
    acquires = [worker.acquire(tx, simulator, AcquireRental(rental_id=rental_id)) for rental_id in ids]
    sweeps = [in_transaction(committed, lambda s: s.fail_stale(later, timedelta(minutes=10))) for _ in range(3)]
    outcomes = await asyncio.gather(*acquires, *sweeps)

    rentals = [await load(committed, rental_id) for rental_id in ids]
    failed = [rental for rental in rentals if rental.status == "failed"]
    assert sum(outcomes[len(ids) :]) == len(failed)
    assert {rental.status for rental in rentals} <= {"active", "failed"}
    for rental in rentals:
        refunds = await count_references(committed, f"rental:{rental.id}:refund")
        assert refunds == (1 if rental.status == "failed" else 0), rental.id
        assert (rental.phone_number is None) == (rental.status == "failed")
        async with committed() as session:
            query = select(SimulatorReservation.state).where(
                SimulatorReservation.idempotency_key == f"rental-{rental.id}"
            )
            at_provider = await session.scalar(query)
        # An active rental's number is in use; a failed one's, if the provider rented it at all, went back.
        assert at_provider in (("active",) if rental.status == "active" else (None, "refunded")), rental.id
    async with committed() as session:
        assert await WalletService(session=session).balance_of(user_id) == len(failed) * price
        await assert_ledger_balances(session)
