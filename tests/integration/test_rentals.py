"""Rentals through the API: renting, extending (and the end reconciled with the provider's), releasing, reading
messages, on PostgreSQL with the simulator."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.db.base import utcnow
from namaskah.domain.catalog.service import CatalogService
from namaskah.domain.rentals import worker
from namaskah.domain.rentals.jobs import AcquireRental, ExtendAtProvider, PollRentalMessages
from namaskah.domain.rentals.models import Rental, RentalMessage
from namaskah.domain.rentals.service import RentalService
from namaskah.domain.wallet.models import LedgerTransaction
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.providers.simulator import SimulatorProvider
from tests.integration.test_admin import headers_for
from tests.integration.test_catalog import RATES, synced
from tests.integration.test_verifications import balance, count_references, customer, fund, transactions

Sessions = async_sessionmaker[AsyncSession]


async def rental_price(sessions: Sessions, days: int, slug: str = "whatsapp", tier: str = "pro") -> int:
    async with sessions() as session:
        return (await CatalogService(session=session, rates=RATES).quote_rental(slug, tier, days)).price


async def load(sessions: Sessions, rental_id: uuid.UUID) -> Rental:
    async with sessions() as session:
        found = await RentalService(session=session).load(rental_id)
        assert found is not None
        return found


async def acquired(sessions: Sessions, rental_id: uuid.UUID) -> Rental:
    await worker.acquire(transactions(sessions), SimulatorProvider(sessions), AcquireRental(rental_id=rental_id))
    return await load(sessions, rental_id)


async def actors(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        query = select(OutboxMessage.actor).where(OutboxMessage.actor.like("rentals.%")).order_by(OutboxMessage.id)
        return list((await session.scalars(query)).all())


@pytest.fixture
async def ready(session_factory: Sessions) -> Sessions:
    await synced(session_factory)
    return session_factory


async def test_a_rental_is_charged_pending_and_requests_the_number(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 7)
    await fund(ready, user_id, price + 100)

    response = await client.post("/v1/rentals", json={"service": "whatsapp", "days": 7}, headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "service", "status", "phone_number", "price", "currency", "starts_at", "ends_at"}
    shown = (body["service"], body["status"], body["phone_number"], body["price"])
    assert shown == ("whatsapp", "pending", None, price)
    assert price > 0
    assert await balance(ready, user_id) == 100
    assert await count_references(ready, f"rental:{body['id']}") == 1
    async with ready() as session:
        jobs = (await session.scalars(select(OutboxMessage).where(OutboxMessage.actor == "rentals.acquire"))).all()
    assert [job.payload for job in jobs] == [{"rental_id": body["id"]}]
    assert (await client.get(f"/v1/rentals/{body['id']}", headers=headers)).json() == body
    listed = (await client.get("/v1/rentals", headers=headers)).json()
    assert (listed["total"], [item["id"] for item in listed["items"]]) == (1, [body["id"]])


async def test_the_free_tier_has_no_rentals(client: AsyncClient, ready: Sessions) -> None:
    headers = await headers_for(client, "free@example.com")

    response = await client.post("/v1/rentals", json={"service": "whatsapp", "days": 7}, headers=headers)

    assert (response.status_code, response.json()["code"]) == (403, "feature_not_in_tier")


async def test_days_the_provider_does_not_sell_are_422(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, 10 * await rental_price(ready, 30))

    response = await client.post("/v1/rentals", json={"service": "whatsapp", "days": 3}, headers=headers)

    assert (response.status_code, response.json()["code"]) == (422, "unsupported_rental_days")
    assert await actors(ready) == []


async def test_without_credits_the_answer_is_402_and_nothing_is_written(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, await rental_price(ready, 7) - 1)

    response = await client.post("/v1/rentals", json={"service": "whatsapp", "days": 7}, headers=headers)

    assert (response.status_code, response.json()["code"]) == (402, "insufficient_credits")
    async with ready() as session:
        assert await session.scalar(select(func.count()).select_from(Rental)) == 0
        assert (await session.scalars(select(LedgerTransaction.kind))).all() == ["topup"]
    assert await actors(ready) == []


async def test_acquire_assigns_a_number_and_every_message_is_kept(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, await rental_price(ready, 1))
    created = (await client.post("/v1/rentals", json={"service": "whatsapp", "days": 1}, headers=headers)).json()
    rental_id = uuid.UUID(created["id"])
    simulator, tx = SimulatorProvider(ready), transactions(ready)

    rental = await acquired(ready, rental_id)

    assert (rental.status, rental.provider_id is not None, rental.phone_number is not None) == ("active", True, True)
    assert await actors(ready) == ["rentals.acquire", "rentals.poll"]
    await simulator.deliver(rental.phone_number or "", "Your code is 123456")
    await simulator.deliver(rental.phone_number or "", "Hello from the bank")
    for _ in range(2):  # a second poll sees the same messages and stores nothing more
        assert await worker.poll(tx, simulator, PollRentalMessages(rental_id=rental_id)) is True
    async with ready() as session:
        assert await session.scalar(select(func.count()).where(RentalMessage.rental_id == rental_id)) == 2
    shown = (await client.get(f"/v1/rentals/{rental_id}/messages", headers=headers)).json()
    assert shown["total"] == 2
    assert [(m["text"], m["code"]) for m in shown["items"]] == [
        ("Your code is 123456", "123456"),
        ("Hello from the bank", None),
    ]
    page = (await client.get(f"/v1/rentals/{rental_id}/messages?limit=1&offset=1", headers=headers)).json()
    assert (page["total"], [m["text"] for m in page["items"]]) == (2, ["Hello from the bank"])


async def test_a_refusing_provider_fails_and_refunds_the_rental_once(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 1)
    await fund(ready, user_id, price)
    created = (await client.post("/v1/rentals", json={"service": "whatsapp", "days": 1}, headers=headers)).json()
    rental_id = uuid.UUID(created["id"])

    for _ in range(2):
        await worker.give_up(transactions(ready), AcquireRental(rental_id=rental_id))

    assert (await load(ready, rental_id)).status == "failed"
    assert await balance(ready, user_id) == price
    assert await count_references(ready, f"rental:{rental_id}:refund") == 1
    assert (await acquired(ready, rental_id)).phone_number is None  # a late acquire job rents nothing


async def test_extend_charges_and_moves_the_end(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    per_day = await rental_price(ready, 1)
    await fund(ready, user_id, 30 * per_day)
    created = (await client.post("/v1/rentals", json={"service": "whatsapp", "days": 7}, headers=headers)).json()
    rental_id = uuid.UUID(created["id"])
    refused = await client.post(f"/v1/rentals/{rental_id}/extend", json={"days": 7}, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "rental_not_active")
    before = await acquired(ready, rental_id)

    first = await client.post(f"/v1/rentals/{rental_id}/extend", json={"days": 7}, headers=headers)
    second = await client.post(f"/v1/rentals/{rental_id}/extend", json={"days": 1}, headers=headers)
    odd = await client.post(f"/v1/rentals/{rental_id}/extend", json={"days": 2}, headers=headers)

    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert (odd.status_code, odd.json()["code"]) == (422, "unsupported_rental_days")
    after = await load(ready, rental_id)
    assert after.ends_at - before.ends_at == timedelta(days=8)
    assert second.json()["price"] == after.price == 15 * per_day
    assert await balance(ready, user_id) == 15 * per_day
    assert [await count_references(ready, f"rental:{rental_id}:extend:{n}") for n in (1, 2, 3)] == [1, 1, 0]
    assert (await actors(ready)).count("rentals.extend_at_provider") == 2
    short = await client.post(f"/v1/rentals/{rental_id}/extend", json={"days": 30}, headers=headers)
    assert (short.status_code, short.json()["code"]) == (402, "insufficient_credits")
    assert (await load(ready, rental_id)).ends_at == after.ends_at


async def test_release_refunds_whole_unused_days_once(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    per_day = await rental_price(ready, 1)
    await fund(ready, user_id, 7 * per_day)
    created = (await client.post("/v1/rentals", json={"service": "whatsapp", "days": 7}, headers=headers)).json()
    rental_id = uuid.UUID(created["id"])
    await acquired(ready, rental_id)

    released = await client.post(f"/v1/rentals/{rental_id}/release", headers=headers)
    again = await client.post(f"/v1/rentals/{rental_id}/release", headers=headers)

    assert (released.status_code, released.json()["status"]) == (200, "released")
    assert (again.status_code, again.json()["code"]) == (409, "rental_not_active")
    # Assigned a moment ago: 6 whole days and a bit are left; the started day is used.
    assert await balance(ready, user_id) == 6 * per_day
    assert await count_references(ready, f"rental:{rental_id}:release") == 1
    assert "rentals.release_at_provider" in await actors(ready)


async def test_another_users_rental_is_not_found(client: AsyncClient, ready: Sessions) -> None:
    headers, owner = await customer(client, ready)
    await fund(ready, owner, await rental_price(ready, 1))
    created = (await client.post("/v1/rentals", json={"service": "whatsapp", "days": 1}, headers=headers)).json()
    await acquired(ready, uuid.UUID(created["id"]))
    intruder, _ = await customer(client, ready, "eve@example.com")

    for method, path, body in (
        ("GET", "", None),
        ("GET", "/messages", None),
        ("POST", "/extend", {"days": 1}),
        ("POST", "/release", None),
    ):
        response = await client.request(method, f"/v1/rentals/{created['id']}{path}", json=body, headers=intruder)
        assert (response.status_code, response.json()["code"]) == (404, "rental_not_found"), path
    assert (await load(ready, uuid.UUID(created["id"]))).status == "active"
    assert (await client.get("/v1/rentals", headers=intruder)).json() == {"items": [], "total": 0}


async def test_an_api_key_needs_the_rental_scopes(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, 2 * await rental_price(ready, 1))
    read_only = await client.post("/v1/api-keys", json={"name": "r", "scopes": ["rentals:read"]}, headers=headers)
    writer = await client.post("/v1/api-keys", json={"name": "w", "scopes": ["rentals:write"]}, headers=headers)
    reader, writes = {"X-API-Key": read_only.json()["key"]}, {"X-API-Key": writer.json()["key"]}

    refused = await client.post("/v1/rentals", json={"service": "whatsapp", "days": 1}, headers=reader)
    created = await client.post("/v1/rentals", json={"service": "whatsapp", "days": 1}, headers=writes)
    unreadable = await client.get("/v1/rentals", headers=writes)

    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    assert created.status_code == 201
    assert (unreadable.status_code, unreadable.json()["code"]) == (403, "insufficient_scope")
    assert (await client.get("/v1/rentals", headers=reader)).json()["total"] == 1


async def extend_jobs(sessions: Sessions) -> list[ExtendAtProvider]:
    async with sessions() as session:
        query = select(OutboxMessage.payload).where(OutboxMessage.actor == ExtendAtProvider.actor_name)
        return [
            ExtendAtProvider.decode(payload) for payload in (await session.scalars(query.order_by(OutboxMessage.id)))
        ]


async def extended_rental(client: AsyncClient, sessions: Sessions, provider: SimulatorProvider, *days: int) -> Rental:
    """An active 1-day rental (its number rented from `provider`) extended by each of `days` through the API."""
    headers, user_id = await customer(client, sessions)
    await fund(sessions, user_id, (1 + sum(days)) * await rental_price(sessions, 1))
    created = (await client.post("/v1/rentals", json={"service": "whatsapp", "days": 1}, headers=headers)).json()
    rental_id = uuid.UUID(created["id"])
    await worker.acquire(transactions(sessions), provider, AcquireRental(rental_id=rental_id))
    for n in days:
        response = await client.post(f"/v1/rentals/{rental_id}/extend", json={"days": n}, headers=headers)
        assert response.status_code == 200, response.text
    return await load(sessions, rental_id)


async def test_the_extend_job_takes_the_providers_slightly_earlier_end(client: AsyncClient, ready: Sessions) -> None:
    # The provider's clock started the rental five minutes before we assigned the number.
    early = SimulatorProvider(ready, clock=lambda: utcnow() - timedelta(minutes=5))
    rental = await extended_rental(client, ready, early, 1)
    [job] = await extend_jobs(ready)
    assert job.ends_at == rental.ends_at

    await worker.extend_at_provider(transactions(ready), early, job)

    after = await load(ready, rental.id)
    at_provider = await early.get_rental(rental.provider_id or "")
    assert after.ends_at == at_provider.expires_at
    assert timedelta(minutes=4) < rental.ends_at - after.ends_at < timedelta(minutes=6)
    assert after.price == rental.price  # nothing charged or refunded


async def test_the_extend_job_keeps_our_end_when_the_provider_is_a_day_off(
    client: AsyncClient, ready: Sessions
) -> None:
    simulator = SimulatorProvider(ready)
    rental = await extended_rental(client, ready, simulator, 1, 7)
    first, second = await extend_jobs(ready)

    # Run out of order: the second extension's report lacks the first's day, the first's includes the second's
    # week; neither is taken, and the end stays what the customer paid for.
    await worker.extend_at_provider(transactions(ready), simulator, second)
    await worker.extend_at_provider(transactions(ready), simulator, first)

    assert (await load(ready, rental.id)).ends_at == rental.ends_at == second.ends_at
    at_provider = await simulator.get_rental(rental.provider_id or "")
    assert rental.ends_at - at_provider.expires_at < timedelta(seconds=5)


async def test_an_extend_job_delivered_twice_moves_our_end_once(client: AsyncClient, ready: Sessions) -> None:
    simulator = SimulatorProvider(ready)
    rental = await extended_rental(client, ready, simulator, 7)
    [job] = await extend_jobs(ready)

    await worker.extend_at_provider(transactions(ready), simulator, job)
    once = (await load(ready, rental.id)).ends_at
    await worker.extend_at_provider(transactions(ready), simulator, job)  # the provider extends again

    assert (await load(ready, rental.id)).ends_at == once
    assert rental.ends_at - once < timedelta(seconds=5)  # the simulator started its clock a moment before us
    at_provider = await simulator.get_rental(rental.provider_id or "")
    assert at_provider.expires_at == once + timedelta(days=7)


async def test_an_extend_job_from_before_reconciliation_only_extends(client: AsyncClient, ready: Sessions) -> None:
    early = SimulatorProvider(ready, clock=lambda: utcnow() - timedelta(minutes=5))
    rental = await extended_rental(client, ready, early, 1)
    legacy = ExtendAtProvider.decode({"rental_id": str(rental.id), "provider_id": rental.provider_id, "days": 1})

    await worker.extend_at_provider(transactions(ready), early, legacy)

    assert (await load(ready, rental.id)).ends_at == rental.ends_at
    assert (await early.get_rental(rental.provider_id or "")).expires_at > rental.ends_at - timedelta(minutes=6)
