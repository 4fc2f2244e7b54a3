"""Rentals over time: expiry, auto-renewal charged once per end, lapsing when the wallet is short."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from namaskah.domain.rentals.models import Rental
from namaskah.domain.rentals.service import RentalService
from namaskah.domain.wallet.models import LedgerTransaction
from tests.integration.test_catalog import synced
from tests.integration.test_rentals import Sessions, acquired, actors, load, rental_price
from tests.integration.test_verifications import balance, customer, fund

HORIZON = timedelta(hours=1)


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
    assert "rentals.extend_at_provider" in await actors(ready)


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
