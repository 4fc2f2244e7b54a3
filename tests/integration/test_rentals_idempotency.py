"""`Idempotency-Key` on `POST /v1/rentals`: a retry answers the first rental and charges nothing, a reuse with
another body is 422, keys are per user, a 402 spends no key, and concurrent twins charge exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.rentals.models import Rental
from namaskah.domain.rentals.schemas import RentalCreate
from namaskah.domain.rentals.service import RentalService
from namaskah.domain.wallet.models import LedgerTransaction
from namaskah.domain.wallet.service import InsufficientCredits
from namaskah.lib.idempotency import IdempotencyKeyReused
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.providers.simulator import SimulatorProvider
from tests.integration.test_catalog import RATES, synced
from tests.integration.test_rentals import Sessions, acquired, actors, rental_price
from tests.integration.test_verifications import balance, count_references, customer, fund, new_user
from tests.integration.test_wallet_ledger import assert_ledger_balances

WEEK = {"service": "whatsapp", "days": 7}


@pytest.fixture
async def ready(session_factory: Sessions) -> Sessions:
    await synced(session_factory)
    return session_factory


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[Sessions]:
    """Sessions on a database of their own with a real pool: every commit and unique-index wait is real."""
    engine = create_async_engine(isolated_database, pool_size=15, max_overflow=0, pool_timeout=60)
    sessions = create_session_factory(engine)
    await synced(sessions)
    yield sessions
    await engine.dispose()


async def count(sessions: Sessions, model: type[object], *conditions: object) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0  # type: ignore[arg-type]


async def test_the_same_key_and_body_answer_the_first_rental_and_charge_once(
    client: AsyncClient, ready: Sessions
) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 7)
    await fund(ready, user_id, 3 * price)
    keyed = {**headers, "Idempotency-Key": "rent-42"}

    first = await client.post("/v1/rentals", json=WEEK, headers=keyed)
    # Another key order and the default spelled out: the same request.
    spelled_out = {"auto_renew": False, "days": 7, "service": "whatsapp"}
    again = await client.post("/v1/rentals", json=spelled_out, headers=keyed)

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json() == first.json()
    assert await balance(ready, user_id) == 2 * price
    assert await count_references(ready, f"rental:{first.json()['id']}") == 1
    assert await actors(ready) == ["rentals.acquire"]
    assert (await client.get("/v1/rentals", headers=headers)).json()["total"] == 1


async def test_the_same_key_with_another_body_is_422_and_charges_nothing(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 7)
    await fund(ready, user_id, 3 * price)
    keyed = {**headers, "Idempotency-Key": "rent-42"}
    first = await client.post("/v1/rentals", json=WEEK, headers=keyed)

    for body in ({"service": "whatsapp", "days": 1}, {**WEEK, "auto_renew": True}, {**WEEK, "service": "telegram"}):
        reused = await client.post("/v1/rentals", json=body, headers=keyed)
        assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused"), body

    assert first.status_code == 201
    assert await balance(ready, user_id) == 2 * price
    assert await count(ready, Rental) == 1


async def test_keys_are_per_user(client: AsyncClient, ready: Sessions) -> None:
    headers_a, user_a = await customer(client, ready)
    headers_b, user_b = await customer(client, ready, "bob@example.com")
    price = await rental_price(ready, 7)
    await fund(ready, user_a, price)
    await fund(ready, user_b, price)

    mine = await client.post("/v1/rentals", json=WEEK, headers={**headers_a, "Idempotency-Key": "k"})
    theirs = await client.post("/v1/rentals", json=WEEK, headers={**headers_b, "Idempotency-Key": "k"})

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert (await balance(ready, user_a), await balance(ready, user_b)) == (0, 0)
    # Neither sees the other's rental through the key either.
    assert (await client.get(f"/v1/rentals/{mine.json()['id']}", headers=headers_b)).status_code == 404


async def test_without_a_key_every_request_is_a_new_rental(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 7)
    await fund(ready, user_id, 2 * price)

    first = await client.post("/v1/rentals", json=WEEK, headers=headers)
    second = await client.post("/v1/rentals", json=WEEK, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert await balance(ready, user_id) == 0


async def test_a_402_writes_nothing_and_leaves_the_key_unspent(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 7)
    await fund(ready, user_id, price - 1)
    keyed = {**headers, "Idempotency-Key": "rent-short"}

    short = await client.post("/v1/rentals", json=WEEK, headers=keyed)

    assert (short.status_code, short.json()["code"]) == (402, "insufficient_credits")
    assert await count(ready, Rental) == 0
    assert await count(ready, LedgerTransaction, LedgerTransaction.kind != "topup") == 0
    assert await actors(ready) == []
    # Topped up, the retry with the same key rents: the failed attempt did not claim it.
    await fund(ready, user_id, 1)
    paid = await client.post("/v1/rentals", json=WEEK, headers=keyed)
    assert paid.status_code == 201, paid.text
    assert await balance(ready, user_id) == 0


async def test_a_replay_answers_the_rental_as_it_is_now(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, await rental_price(ready, 7))
    keyed = {**headers, "Idempotency-Key": "rent-later"}
    first = (await client.post("/v1/rentals", json=WEEK, headers=keyed)).json()
    rental = await acquired(ready, uuid.UUID(first["id"]))

    again = (await client.post("/v1/rentals", json=WEEK, headers=keyed)).json()

    assert (again["id"], again["status"], again["phone_number"]) == (first["id"], "active", rental.phone_number)
    assert await balance(ready, user_id) == 0


@pytest.mark.parametrize("key", ["", "x" * 65, "has space"])
async def test_a_malformed_key_is_refused_before_anything_is_charged(
    client: AsyncClient, ready: Sessions, key: str
) -> None:
    headers, user_id = await customer(client, ready)
    price = await rental_price(ready, 7)
    await fund(ready, user_id, price)

    response = await client.post("/v1/rentals", json=WEEK, headers={**headers, "Idempotency-Key": key})

    assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), response.text
    assert await balance(ready, user_id) == price
    assert await count(ready, Rental) == 0


async def rent(sessions: Sessions, user_id: uuid.UUID, request: RentalCreate, key: str | None) -> uuid.UUID | str:
    """One purchase in a request-like transaction: committed on success, rolled back on an error."""
    async with sessions() as session:
        service = RentalService(session=session, rates=RATES, rental_days=SimulatorProvider.rental_days)
        try:
            rental = await service.rent(user_id, "pro", request, key)
        except (InsufficientCredits, IdempotencyKeyReused) as exc:
            await session.rollback()
            return exc.code
        await session.commit()
        return rental.id


async def test_twelve_concurrent_requests_with_one_key_charge_once(committed: Sessions) -> None:
    user_id = (await new_user(committed)).id
    price = await rental_price(committed, 7)
    await fund(committed, user_id, 10 * price)
    week = RentalCreate(service="whatsapp", days=7)

    outcomes = await asyncio.gather(*(rent(committed, user_id, week, "retry-me") for _ in range(12)))

    assert len(set(outcomes)) == 1
    assert isinstance(outcomes[0], uuid.UUID)
    assert await balance(committed, user_id) == 9 * price
    assert await count(committed, Rental) == 1
    assert await count(committed, LedgerTransaction, LedgerTransaction.kind == "rental") == 1
    assert await count(committed, OutboxMessage, OutboxMessage.actor == "rentals.acquire") == 1
    async with committed() as session:
        await assert_ledger_balances(session)


async def test_concurrent_requests_with_one_key_and_two_bodies_rent_one(committed: Sessions) -> None:
    user_id = (await new_user(committed)).id
    per_day = await rental_price(committed, 1)
    await fund(committed, user_id, 100 * per_day)
    day, week = RentalCreate(service="whatsapp", days=1), RentalCreate(service="whatsapp", days=7)

    outcomes = await asyncio.gather(*(rent(committed, user_id, (day, week)[n % 2], "mixed") for n in range(12)))

    won = [outcome for outcome in outcomes if isinstance(outcome, uuid.UUID)]
    assert len(set(won)) == 1
    assert sorted(o for o in outcomes if not isinstance(o, uuid.UUID)) == ["idempotency_key_reused"] * 6
    async with committed() as session:
        rental = (await session.scalars(select(Rental))).one()
    assert await balance(committed, user_id) == 100 * per_day - rental.price
    assert await count(committed, LedgerTransaction, LedgerTransaction.kind == "rental") == 1


async def test_concurrent_requests_with_one_key_and_a_short_wallet_write_nothing(committed: Sessions) -> None:
    user_id = (await new_user(committed)).id
    price = await rental_price(committed, 7)
    await fund(committed, user_id, price - 1)
    week = RentalCreate(service="whatsapp", days=7)

    outcomes = await asyncio.gather(*(rent(committed, user_id, week, "broke") for _ in range(6)))

    assert outcomes == ["insufficient_credits"] * 6
    assert await count(committed, Rental) == 0
    assert await count(committed, OutboxMessage) == 0
    assert await balance(committed, user_id) == price - 1
