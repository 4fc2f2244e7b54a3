"""Verifications through the API and the job logic, on PostgreSQL with the real simulator as the provider."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.db.base import utcnow
from namaskah.domain.accounts.models import User
from namaskah.domain.catalog.service import CatalogService
from namaskah.domain.verifications import worker
from namaskah.domain.verifications.jobs import AcquireNumber, PollMessages
from namaskah.domain.verifications.models import Verification, VerificationMessage
from namaskah.domain.verifications.schemas import VerificationCreate
from namaskah.domain.verifications.service import VerificationService
from namaskah.domain.wallet.models import EntryKind, LedgerTransaction
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.providers.base import ProviderMessage
from namaskah.providers.errors import ProviderUnavailable
from namaskah.providers.simulator import SimulatorProvider
from tests.integration.test_admin import headers_for
from tests.integration.test_catalog import RATES, synced

Sessions = async_sessionmaker[AsyncSession]


async def customer(client: AsyncClient, sessions: Sessions, email: str = "ada@example.com") -> tuple[dict, uuid.UUID]:
    """A signed-in customer on `pro` (more requests a minute than `free`) and their id."""
    headers = await headers_for(client, email)
    async with sessions() as session:
        await session.execute(update(User).where(User.email == email).values(tier="pro"))
        await session.commit()
    return headers, uuid.UUID((await client.get("/v1/me", headers=headers)).json()["id"])


async def fund(sessions: Sessions, user_id: uuid.UUID, amount: int) -> None:
    async with sessions() as session:
        await WalletService(session=session).credit(
            user_id, amount, kind=EntryKind.TOPUP, reference=f"paystack:{uuid.uuid4()}"
        )
        await session.commit()


async def price_of(sessions: Sessions, slug: str = "whatsapp", tier: str = "pro") -> int:
    async with sessions() as session:
        return (await CatalogService(session=session, rates=RATES).quote(slug, tier)).price


async def balance(sessions: Sessions, user_id: uuid.UUID) -> int:
    async with sessions() as session:
        return await WalletService(session=session).balance_of(user_id)


async def count_references(sessions: Sessions, reference: str) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.reference == reference)
        return await session.scalar(query) or 0


def transactions(sessions: Sessions):  # type: ignore[no-untyped-def]
    """What `runtime.transaction` is to the actors: a unit of work committed at the end."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session
            await session.commit()

    return transaction


async def bought(sessions: Sessions, user_id: uuid.UUID, **body: str) -> uuid.UUID:
    """A verification bought through the service (tier free), committed."""
    async with sessions() as session:
        service = VerificationService(session=session, rates=RATES)
        request = VerificationCreate(**{"service": "whatsapp", **body})  # type: ignore[arg-type]
        verification = await service.purchase(user_id, "free", request, None)
        await session.commit()
        return verification.id


async def load(sessions: Sessions, verification_id: uuid.UUID) -> Verification:
    async with sessions() as session:
        found = await VerificationService(session=session).load(verification_id)
        assert found is not None
        return found


@pytest.fixture
async def ready(session_factory: Sessions) -> Sessions:
    await synced(session_factory)
    return session_factory


async def test_a_purchase_is_charged_pending_and_requests_the_number(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await price_of(ready)
    await fund(ready, user_id, 3 * price)

    response = await client.post("/v1/verifications", json={"service": "whatsapp"}, headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["service"], body["status"], body["price"], body["currency"]) == ("whatsapp", "pending", price, "NGN")
    assert (body["phone_number"], body["code"], body["messages"]) == (None, None, [])
    assert set(body) == {
        "id", "service", "status", "phone_number", "price", "currency", "code", "messages", "created_at", "expires_at"
    }  # fmt: skip
    assert await balance(ready, user_id) == 2 * price
    async with ready() as session:
        jobs = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.actor == "verifications.acquire"))
        ).all()
    assert [job.payload for job in jobs] == [{"verification_id": body["id"]}]
    shown = await client.get(f"/v1/verifications/{body['id']}", headers=headers)
    assert shown.status_code == 200
    assert shown.json() == body
    listed = (await client.get("/v1/verifications", headers=headers)).json()
    assert (listed["total"], [item["id"] for item in listed["items"]]) == (1, [body["id"]])


async def test_without_credits_the_answer_is_402_and_nothing_is_written(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, await price_of(ready) - 1)

    response = await client.post("/v1/verifications", json={"service": "whatsapp"}, headers=headers)

    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credits"
    async with ready() as session:
        assert await session.scalar(select(func.count()).select_from(Verification)) == 0
        assert await session.scalar(select(func.count()).where(OutboxMessage.actor.like("verifications.%"))) == 0
        kinds = (await session.scalars(select(LedgerTransaction.kind))).all()
    assert kinds == ["topup"]


async def test_an_unknown_service_is_404(client: AsyncClient, ready: Sessions) -> None:
    headers, _ = await customer(client, ready)
    response = await client.post("/v1/verifications", json={"service": "myspace"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (404, "unknown_service")


async def test_a_repeated_key_answers_the_first_purchase_once(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await price_of(ready)
    await fund(ready, user_id, 5 * price)
    keyed = {**headers, "Idempotency-Key": "order-17"}

    first = await client.post("/v1/verifications", json={"service": "whatsapp"}, headers=keyed)
    again = await client.post("/v1/verifications", json={"carrier": None, "service": "whatsapp"}, headers=keyed)
    other = await client.post("/v1/verifications", json={"service": "telegram"}, headers=keyed)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert await balance(ready, user_id) == 4 * price
    # Another user may use the same key for their own purchase.
    headers_b, user_b = await customer(client, ready, "bob@example.com")
    await fund(ready, user_b, price)
    theirs = await client.post(
        "/v1/verifications", json={"service": "whatsapp"}, headers={**headers_b, "Idempotency-Key": "order-17"}
    )
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


async def test_another_users_verification_is_not_found(client: AsyncClient, ready: Sessions) -> None:
    _, owner = await customer(client, ready)
    await fund(ready, owner, await price_of(ready, tier="free"))
    verification_id = await bought(ready, owner)
    intruder, _ = await customer(client, ready, "eve@example.com")

    shown = await client.get(f"/v1/verifications/{verification_id}", headers=intruder)
    cancelled = await client.post(f"/v1/verifications/{verification_id}/cancel", headers=intruder)

    assert (shown.status_code, shown.json()["code"]) == (404, "verification_not_found")
    assert (cancelled.status_code, cancelled.json()["code"]) == (404, "verification_not_found")
    assert (await load(ready, verification_id)).status == "pending"


async def test_an_api_key_needs_the_write_scope_to_buy(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, await price_of(ready))
    created = await client.post(
        "/v1/api-keys", json={"name": "shop", "scopes": ["verifications:read"]}, headers=headers
    )
    key = {"X-API-Key": created.json()["key"]}

    refused = await client.post("/v1/verifications", json={"service": "whatsapp"}, headers=key)

    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    assert (await client.get("/v1/verifications", headers=key)).json() == {"items": [], "total": 0}


async def test_number_assigned_then_an_sms_completes_it_with_its_code(
    ready: Sessions, session_factory: Sessions
) -> None:
    user_id = (await new_user(ready)).id
    await fund(ready, user_id, await price_of(ready, tier="free"))
    verification_id = await bought(ready, user_id)
    simulator, tx = SimulatorProvider(ready), transactions(ready)

    await worker.acquire(tx, simulator, AcquireNumber(verification_id=verification_id))

    active = await load(ready, verification_id)
    assert active.status == "active"
    assert active.phone_number is not None
    assert active.provider_id is not None
    assert await worker.poll(tx, simulator, PollMessages(verification_id=verification_id)) is True
    await simulator.deliver(active.phone_number, "Your WhatsApp code: 482-913. Or 4829 13? Use 731904")
    assert await worker.poll(tx, simulator, PollMessages(verification_id=verification_id)) is False
    assert await worker.poll(tx, simulator, PollMessages(verification_id=verification_id)) is False
    async with ready() as session:
        service = VerificationService(session=session)
        verification = await service.get_for(user_id, verification_id)
        messages = (await service.messages_of([verification_id]))[verification_id]
    assert verification.status == "completed"
    assert [m.code for m in messages] == ["4829"]
    assert await count_references(ready, f"verification:{verification_id}:refund") == 0


async def new_user(sessions: Sessions, email: str = "kit@example.com") -> User:
    async with sessions() as session:
        user = User(email=email, password_hash="not-a-real-hash")
        session.add(user)
        await session.commit()
        return user


async def test_a_refusing_provider_fails_and_refunds_an_outage_retries(ready: Sessions) -> None:
    user_id = (await new_user(ready)).id
    price = await price_of(ready, tier="free")
    await fund(ready, user_id, 2 * price)
    refused = await bought(ready, user_id, area_code="000")
    down = await bought(ready, user_id, area_code="999")
    simulator, tx = SimulatorProvider(ready), transactions(ready)

    await worker.acquire(tx, simulator, AcquireNumber(verification_id=refused))
    with pytest.raises(ProviderUnavailable):
        await worker.acquire(tx, simulator, AcquireNumber(verification_id=down))

    assert (await load(ready, refused)).status == "failed"
    assert (await load(ready, down)).status == "pending"
    assert await balance(ready, user_id) == price
    # A redelivered job changes nothing: no second refund, no number.
    await worker.acquire(tx, simulator, AcquireNumber(verification_id=refused))
    assert await balance(ready, user_id) == price
    # Dramatiq ran out of retries for the outage: the purchase fails and is refunded, once.
    for _ in range(2):
        await worker.give_up(tx, AcquireNumber(verification_id=down))
    assert (await load(ready, down)).status == "failed"
    assert await balance(ready, user_id) == 2 * price
    assert await count_references(ready, f"verification:{down}:refund") == 1


async def test_cancel_refunds_once_and_a_late_message_changes_nothing(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    price = await price_of(ready)
    await fund(ready, user_id, price)
    created = (await client.post("/v1/verifications", json={"service": "whatsapp"}, headers=headers)).json()
    verification_id = uuid.UUID(created["id"])
    await worker.acquire(transactions(ready), SimulatorProvider(ready), AcquireNumber(verification_id=verification_id))

    cancelled = await client.post(f"/v1/verifications/{verification_id}/cancel", headers=headers)
    again = await client.post(f"/v1/verifications/{verification_id}/cancel", headers=headers)

    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert (again.status_code, again.json()["code"]) == (409, "not_cancellable")
    assert await balance(ready, user_id) == price
    async with ready() as session:
        jobs = await session.scalars(select(OutboxMessage.actor).where(OutboxMessage.actor.like("verifications.%")))
        assert sorted(jobs.all()) == ["verifications.acquire", "verifications.cancel_at_provider", "verifications.poll"]
    await late_message(ready, verification_id)
    assert (await load(ready, verification_id)).status == "cancelled"
    assert await balance(ready, user_id) == price
    assert await count_references(ready, f"verification:{verification_id}:refund") == 1


async def late_message(sessions: Sessions, verification_id: uuid.UUID) -> None:
    message = ProviderMessage(provider_id="late-1", text="Code 123456", code=None, received_at=utcnow())
    async with sessions() as session:
        await VerificationService(session=session).record_messages(verification_id, [message])
        await session.commit()
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count()).where(VerificationMessage.verification_id == verification_id)
        )
    assert stored == 1


async def test_expiry_refunds_once_and_a_late_message_changes_nothing(ready: Sessions) -> None:
    user_id = (await new_user(ready)).id
    price = await price_of(ready, tier="free")
    await fund(ready, user_id, 2 * price)
    swept, polled = await bought(ready, user_id), await bought(ready, user_id)
    simulator, tx = SimulatorProvider(ready), transactions(ready)
    for verification_id in (swept, polled):
        await worker.acquire(tx, simulator, AcquireNumber(verification_id=verification_id))
    later = utcnow() + timedelta(minutes=16)

    async with ready() as session:
        assert await VerificationService(session=session).expire_due(later, only=swept) == 1
        await session.commit()
    assert await worker.poll(tx, simulator, PollMessages(verification_id=polled), now=later) is False

    assert [(await load(ready, v)).status for v in (swept, polled)] == ["expired", "expired"]
    assert await balance(ready, user_id) == 2 * price
    await late_message(ready, swept)
    async with ready() as session:
        assert await VerificationService(session=session).expire_due(later) == 0
        await session.commit()
    assert (await load(ready, swept)).status == "expired"
    assert await balance(ready, user_id) == 2 * price
    assert await count_references(ready, f"verification:{swept}:refund") == 1


async def test_a_verification_with_an_sms_can_not_be_cancelled(client: AsyncClient, ready: Sessions) -> None:
    headers, user_id = await customer(client, ready)
    await fund(ready, user_id, await price_of(ready))
    created = (await client.post("/v1/verifications", json={"service": "whatsapp"}, headers=headers)).json()
    verification_id = uuid.UUID(created["id"])
    simulator, tx = SimulatorProvider(ready), transactions(ready)
    await worker.acquire(tx, simulator, AcquireNumber(verification_id=verification_id))
    await simulator.deliver((await load(ready, verification_id)).phone_number or "", "G-551234 is your code")
    await worker.poll(tx, simulator, PollMessages(verification_id=verification_id))

    refused = await client.post(f"/v1/verifications/{verification_id}/cancel", headers=headers)

    assert (refused.status_code, refused.json()["code"]) == (409, "not_cancellable")
    shown = (await client.get(f"/v1/verifications/{verification_id}", headers=headers)).json()
    assert (shown["status"], shown["code"], [m["text"] for m in shown["messages"]]) == (
        "completed",
        "551234",
        ["G-551234 is your code"],
    )
    assert await balance(ready, user_id) == 0
