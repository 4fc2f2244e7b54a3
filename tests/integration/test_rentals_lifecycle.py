"""Rentals over time: expiry, auto-renewal charged once per end, lapsing when the wallet is short, and rentals
waiting too long for their number failed and refunded once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from sqlalchemy import select

from namaskah.db.base import utcnow
from namaskah.domain.rentals import worker
from namaskah.domain.rentals.jobs import AcquireRental
from namaskah.domain.rentals.models import Rental
from namaskah.domain.rentals.service import RentalService
from namaskah.domain.rentals.sweeper import sweep_rentals
from namaskah.domain.wallet.models import LedgerTransaction
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.providers.simulator import SimulatorProvider
from namaskah.providers.simulator_models import SimulatorReservation
from namaskah.settings import SettingsError
from tests.integration.test_catalog import synced
from tests.integration.test_rentals import Sessions, acquired, actors, extend_jobs, load, rental_price
from tests.integration.test_verifications import balance, count_references, customer, fund, transactions
from tests.support.databases import make_settings

HORIZON = timedelta(hours=1)
PENDING_TIMEOUT = timedelta(minutes=10)


@pytest.fixture
async def ready(session_factory: Sessions) -> Sessions:
    await synced(session_factory)
    return session_factory


async def rented(client: AsyncClient, sessions: Sessions, headers: dict, *, auto_renew: bool) -> Rental:
    body = {"service": "whatsapp", "days": 1, "auto_renew": auto_renew}
    response = await client.post("/v1/rentals", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return await acquired(sessions, uuid.UUID(response.json()["id"]))


async def sweep(sessions: Sessions, now, *, renew: bool = True) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        service = RentalService(session=session)
        renewed, lapsed = await service.renew_due(now, HORIZON) if renew else (0, 0)
        expired = await service.expire_due(now)
        await session.commit()
    return renewed, lapsed, expired


async def renewals(sessions: Sessions, rental_id: uuid.UUID) -> list[str]:
    async with sessions() as session:
        mine = LedgerTransaction.reference.like(f"rental:{rental_id}:renew:%")
        query = select(LedgerTransaction.reference).where(mine)
        return list((await session.scalars(query)).all())


async def test_a_rental_past_its_end_expires_and_an_auto_renewing_one_does_not(
    client: AsyncClient, ready: Sessions
) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, 2 * await rental_price(ready, 1))
    plain = await rented(client, ready, headers, auto_renew=False)
    renewing = await rented(client, ready, headers, auto_renew=True)

    assert await sweep(ready, plain.ends_at - timedelta(minutes=1), renew=False) == (0, 0, 0)
    assert await sweep(ready, plain.ends_at + timedelta(minutes=1), renew=False) == (0, 0, 1)
    assert await sweep(ready, plain.ends_at + timedelta(minutes=1), renew=False) == (0, 0, 0)

    assert (await load(ready, plain.id)).status == "expired"
    assert (await load(ready, renewing.id)).status == "active"
    released = await client.post(f"/v1/rentals/{plain.id}/release", headers=headers)
    assert (released.status_code, released.json()["code"]) == (409, "rental_not_active")


async def test_auto_renew_charges_once_per_end_even_when_the_sweep_runs_twice(
    client: AsyncClient, ready: Sessions
) -> None:
    headers, user_id = await customer(client, ready)
    per_day = await rental_price(ready, 1)
    await fund(ready, user_id, 3 * per_day)
    rental = await rented(client, ready, headers, auto_renew=True)
    soon = rental.ends_at - timedelta(minutes=30)

    assert await sweep(ready, rental.ends_at - 2 * HORIZON) == (0, 0, 0)  # not due yet
    assert await sweep(ready, soon) == (1, 0, 0)
    assert await sweep(ready, soon) == (0, 0, 0)

    renewed = await load(ready, rental.id)
    assert (renewed.status, renewed.ends_at - rental.ends_at) == ("active", timedelta(days=1))
    assert renewed.price == 2 * per_day
    assert await balance(ready, user_id) == per_day
    assert await renewals(ready, rental.id) == [f"rental:{rental.id}:renew:{rental.ends_at.isoformat()}"]
    [job] = await extend_jobs(ready)
    assert (job.days, job.ends_at) == (1, renewed.ends_at)  # the end the extend job compares the provider's with


async def test_a_short_wallet_lapses_the_rental_at_its_end_without_a_charge(
    client: AsyncClient, ready: Sessions
) -> None:
    headers, user_id = await customer(client, ready)
    per_day = await rental_price(ready, 1)
    await fund(ready, user_id, per_day + per_day // 2)
    rental = await rented(client, ready, headers, auto_renew=True)

    # Before the end it stays active (a top-up may still come); at the end it lapses.
    assert await sweep(ready, rental.ends_at - timedelta(minutes=30)) == (0, 0, 0)
    assert (await load(ready, rental.id)).status == "active"
    assert await sweep(ready, rental.ends_at + timedelta(minutes=1)) == (0, 1, 0)
    assert await sweep(ready, rental.ends_at + timedelta(minutes=2)) == (0, 0, 0)

    lapsed = await load(ready, rental.id)
    assert (lapsed.status, lapsed.ends_at, lapsed.price) == ("lapsed", rental.ends_at, per_day)
    assert await balance(ready, user_id) == per_day // 2
    assert await renewals(ready, rental.id) == []


async def stale_sweep(sessions: Sessions, now: datetime) -> int:
    async with sessions() as session:
        failed = await RentalService(session=session).fail_stale(now, PENDING_TIMEOUT)
        await session.commit()
    return failed


async def pending(client: AsyncClient, sessions: Sessions, headers: dict) -> Rental:
    response = await client.post("/v1/rentals", json={"service": "whatsapp", "days": 1}, headers=headers)
    assert response.status_code == 201, response.text
    return await load(sessions, uuid.UUID(response.json()["id"]))


async def reservation_state(sessions: Sessions, rental_id: uuid.UUID) -> str | None:
    """What the simulator did with this rental's number (the acquire job's idempotency key names it)."""
    async with sessions() as session:
        query = select(SimulatorReservation.state).where(SimulatorReservation.idempotency_key == f"rental-{rental_id}")
        return await session.scalar(query)


async def test_a_rental_pending_too_long_is_failed_and_refunded_once(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 1)
    await fund(ready, user_id, price)
    rental = await pending(client, ready, headers)
    assert await balance(ready, user_id) == 0

    assert await stale_sweep(ready, rental.created_at + PENDING_TIMEOUT - timedelta(seconds=1)) == 0
    assert (await load(ready, rental.id)).status == "pending"
    assert await stale_sweep(ready, rental.created_at + PENDING_TIMEOUT) == 1
    assert await stale_sweep(ready, rental.created_at + 2 * PENDING_TIMEOUT) == 0

    failed = await load(ready, rental.id)
    assert (failed.status, failed.failure_reason) == ("failed", "pending_timeout")
    assert await balance(ready, user_id) == price
    assert await count_references(ready, f"rental:{rental.id}:refund") == 1
    # The lost job turning up late rents nothing, and an acquire that gave up refunds nothing more.
    assert (await acquired(ready, rental.id)).phone_number is None
    assert await reservation_state(ready, rental.id) is None
    await worker.give_up(transactions(ready), AcquireRental(rental_id=rental.id))
    assert await balance(ready, user_id) == price


async def test_an_assigned_rental_is_never_failed_by_the_timeout(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, await rental_price(ready, 1))
    rental = await rented(client, ready, headers, auto_renew=False)

    assert await stale_sweep(ready, rental.created_at + 10 * PENDING_TIMEOUT) == 0

    assert (await load(ready, rental.id)).status == "active"
    assert await count_references(ready, f"rental:{rental.id}:refund") == 0
    assert await balance(ready, user_id) == 0


class SweptWhileRenting(SimulatorProvider):
    """The timeout sweep fails the rental while the provider is renting its number: the number arrives late."""

    def __init__(self, sessions: Sessions) -> None:
        super().__init__(sessions)
        self.sessions = sessions

    async def rent(self, service: str, days: int, *, idempotency_key: str, area_code: str | None = None):  # type: ignore[no-untyped-def]
        number = await super().rent(service, days, idempotency_key=idempotency_key, area_code=area_code)
        assert await stale_sweep(self.sessions, utcnow() + PENDING_TIMEOUT) == 1
        return number


async def test_a_number_that_arrives_after_the_timeout_goes_back_and_the_refund_stands(
    client: AsyncClient, ready: Sessions
) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 1)
    await fund(ready, user_id, price)
    rental = await pending(client, ready, headers)

    job = AcquireRental(rental_id=rental.id)
    await worker.acquire(transactions(ready), SweptWhileRenting(ready), job)

    lost = await load(ready, rental.id)
    assert (lost.status, lost.phone_number, lost.failure_reason) == ("failed", None, "pending_timeout")
    assert await reservation_state(ready, rental.id) == "refunded"  # given back to the provider
    assert await balance(ready, user_id) == price
    assert await count_references(ready, f"rental:{rental.id}:refund") == 1
    assert "rentals.poll" not in await actors(ready)


async def test_the_sweep_fails_rentals_pending_past_the_timeout_it_is_given(
    client: AsyncClient, ready: Sessions
) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 1)
    await fund(ready, user_id, price)
    rental = await pending(client, ready, headers)
    relay = OutboxRelay(ready, StubBroker())

    await sweep_rentals(relay, pending_timeout=PENDING_TIMEOUT)
    assert (await load(ready, rental.id)).status == "pending"
    await sweep_rentals(relay, pending_timeout=timedelta(0))
    assert (await load(ready, rental.id)).status == "failed"
    assert await balance(ready, user_id) == price


def test_the_pending_timeout_setting_defaults_to_ten_minutes_and_refuses_less_than_one() -> None:
    assert make_settings().rental_pending_timeout == 600
    assert make_settings(RENTAL_PENDING_TIMEOUT="120").rental_pending_timeout == 120
    with pytest.raises(SettingsError, match="RENTAL_PENDING_TIMEOUT"):
        make_settings(RENTAL_PENDING_TIMEOUT="59")
