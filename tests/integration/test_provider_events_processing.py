"""The provider event job on PostgreSQL: a pushed SMS completes a verification or joins a rental exactly as polling
would store it (TextVerified through its fake held to the vendor document), a push that overtakes our purchase is
looked at again, and reservation and billing events change nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient, Response
from litestar import Litestar
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.db.base import utcnow
from namaskah.domain.provider_events import worker
from namaskah.domain.provider_events.jobs import ProcessProviderEvent
from namaskah.domain.provider_events.models import ProviderEvent
from namaskah.domain.rentals import worker as rental_worker
from namaskah.domain.rentals.jobs import AcquireRental, PollRentalMessages
from namaskah.domain.rentals.models import Rental, RentalMessage
from namaskah.domain.rentals.schemas import RentalCreate
from namaskah.domain.rentals.service import RentalService
from namaskah.domain.verifications import worker as verification_worker
from namaskah.domain.verifications.jobs import AcquireNumber, PollMessages
from namaskah.domain.verifications.models import Verification, VerificationMessage
from namaskah.domain.verifications.service import VerificationService
from namaskah.providers.base import ProviderNumber, ProviderState, ReservationKind, SmsProvider
from namaskah.providers.simulator import SimulatorProvider
from tests.integration.test_catalog import RATES, synced
from tests.integration.test_rentals import rental_price
from tests.integration.test_verifications import bought, customer, fund, load, price_of, transactions
from tests.support.databases import make_settings
from tests.support.textverified_contract import Harness, serve
from tests.support.textverified_pushes import PATH, SECRET, body_of, event, signed, sms_event

Sessions = async_sessionmaker[AsyncSession]
Outcome = worker.Outcome


@pytest.fixture
def app(session_factory: Sessions, stub_broker: StubBroker) -> Litestar:
    settings = make_settings(TEXTVERIFIED_WEBHOOK_SECRET=SECRET)
    return create_app(settings, session_factory=session_factory, broker=stub_broker)


@pytest.fixture
async def ready(session_factory: Sessions) -> Sessions:
    await synced(session_factory)
    return session_factory


@pytest.fixture
async def tv() -> AsyncIterator[Harness]:
    async with serve() as harness:
        yield harness


async def push(client: AsyncClient, payload: dict) -> Response:
    body = body_of(payload)
    response = await client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    return response


async def stored(sessions: Sessions, event_id: str) -> ProviderEvent:
    async with sessions() as session:
        return (await session.scalars(select(ProviderEvent).where(ProviderEvent.event_id == event_id))).one()


async def run(sessions: Sessions, event_id: str, attempts: int = 3) -> Outcome:
    job = ProcessProviderEvent(event_id=(await stored(sessions, event_id)).id)
    return await worker.process(transactions(sessions), job, match_attempts=attempts)


async def delivered(client: AsyncClient, sessions: Sessions, payload: dict) -> Outcome:
    """Pushed over HTTP, then the job the push requested."""
    await push(client, payload)
    return await run(sessions, payload["id"])


async def verification_messages(sessions: Sessions, verification_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
    async with sessions() as session:
        query = select(VerificationMessage).where(VerificationMessage.verification_id == verification_id)
        return [(m.provider_message_id, m.text, m.code) for m in (await session.scalars(query)).all()]


async def rental_messages(sessions: Sessions, rental_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
    async with sessions() as session:
        query = select(RentalMessage).where(RentalMessage.rental_id == rental_id).order_by(RentalMessage.received_at)
        return [(m.provider_message_id, m.text, m.code) for m in (await session.scalars(query)).all()]


async def funded_verification(client: AsyncClient, sessions: Sessions) -> uuid.UUID:
    _, user_id = await customer(client, sessions)
    await fund(sessions, user_id, await price_of(sessions, tier="free"))
    return await bought(sessions, user_id)


async def sold_by_textverified(sessions: Sessions, model: type[Verification | Rental], row_id: uuid.UUID) -> str:
    """The catalog here is the simulator's: mark the row as TextVerified's, as every row is with that provider."""
    async with sessions() as session:
        await session.execute(update(model).where(model.id == row_id).values(provider="textverified"))
        await session.commit()
        provider_id = await session.scalar(select(model.provider_id).where(model.id == row_id))
    assert provider_id
    return provider_id


def pushed_like(sms: dict, reservation_id: str, **options: object) -> dict:
    """The push TextVerified sends for an SMS its list shows."""
    return sms_event(
        reservation_id,
        sms["smsContent"],
        code=sms["parsedCode"],
        created_at=sms["createdAt"],
        to=sms["to"],
        sender=sms["from"],
        **options,  # type: ignore[arg-type]
    )


# --- verifications -----------------------------------------------------------------------------------------------


async def test_a_pushed_sms_completes_the_verification_with_its_code_and_a_later_poll_adds_nothing(
    client: AsyncClient, ready: Sessions
) -> None:
    verification_id = await funded_verification(client, ready)
    simulator = SimulatorProvider(ready)
    await verification_worker.acquire(transactions(ready), simulator, AcquireNumber(verification_id=verification_id))
    provider_id = (await load(ready, verification_id)).provider_id
    payload = sms_event(provider_id, "Your WhatsApp code is 590-113 or 590113", code=None)

    assert await delivered(client, ready, payload) is Outcome.PROCESSED

    verification = await load(ready, verification_id)
    assert verification.status == "completed"
    [(key, text, code)] = await verification_messages(ready, verification_id)
    assert (text, code) == ("Your WhatsApp code is 590-113 or 590113", "590113")  # parsed as polling parses it
    assert key.startswith("push-")
    settled = await stored(ready, payload["id"])
    assert (settled.status, settled.detail) == ("processed", f"sms for verification {verification_id}")
    # The poll that was scheduled finds the verification done; running the job again finds the event settled.
    assert not await verification_worker.poll(
        transactions(ready), simulator, PollMessages(verification_id=verification_id)
    )
    assert await run(ready, payload["id"]) is Outcome.SETTLED_BEFORE
    assert len(await verification_messages(ready, verification_id)) == 1


async def test_with_textverified_the_push_is_stored_at_once_and_a_later_poll_adds_nothing(
    client: AsyncClient, ready: Sessions, tv: Harness
) -> None:
    """The job calls nobody (the code reaches the customer with no round trip to the provider); the poll that lists
    the same SMS under TextVerified's id recognises it by its text and time."""
    verification_id = await funded_verification(client, ready)
    await verification_worker.acquire(transactions(ready), tv.provider, AcquireNumber(verification_id=verification_id))
    provider_id = await sold_by_textverified(ready, Verification, verification_id)
    tv.fake.deliver_sms(provider_id, "Your code is 482913", code="482913")
    (sms,) = tv.fake.sms[provider_id]
    calls = len(tv.fake.log)

    assert await delivered(client, ready, pushed_like(sms, provider_id)) is Outcome.PROCESSED

    assert len(tv.fake.log) == calls
    assert (await load(ready, verification_id)).status == "completed"
    [(key, text, code)] = await verification_messages(ready, verification_id)
    assert (key[:5], text, code) == ("push-", "Your code is 482913", "482913")
    # A poll already in flight when the push came stores what it read: nothing new.
    polled = await tv.provider.messages(provider_id, ReservationKind.VERIFICATION)
    assert [m.provider_id for m in polled] == [sms["id"]]
    async with ready() as session:
        await VerificationService(session=session).record_messages(verification_id, polled)
        await session.commit()
    assert await verification_messages(ready, verification_id) == [(key, "Your code is 482913", "482913")]


async def test_a_polled_sms_then_its_push_is_one_message_and_another_sms_with_the_same_text_is_not(
    client: AsyncClient, ready: Sessions, tv: Harness
) -> None:
    """Poll first, push second: the push finds the listed one. The same text a minute later is another SMS."""
    verification_id = await funded_verification(client, ready)
    await verification_worker.acquire(transactions(ready), tv.provider, AcquireNumber(verification_id=verification_id))
    provider_id = await sold_by_textverified(ready, Verification, verification_id)
    tv.fake.deliver_sms(provider_id, "Your code is 482913", code="482913")
    (sms,) = tv.fake.sms[provider_id]
    polled = await tv.provider.messages(provider_id, ReservationKind.VERIFICATION)
    async with ready() as session:
        await VerificationService(session=session).record_messages(verification_id, polled)
        await session.commit()

    assert await delivered(client, ready, pushed_like(sms, provider_id)) is Outcome.PROCESSED
    assert await verification_messages(ready, verification_id) == [(sms["id"], "Your code is 482913", "482913")]

    later = (polled[0].received_at + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    again = sms_event(provider_id, "Your code is 482913", code="482913", created_at=later)
    assert await delivered(client, ready, again) is Outcome.PROCESSED
    assert len(await verification_messages(ready, verification_id)) == 2


# --- rentals -----------------------------------------------------------------------------------------------------


async def rented(client: AsyncClient, sessions: Sessions, provider: SmsProvider) -> uuid.UUID:
    _, user_id = await customer(client, sessions, email="rita@example.com")
    await fund(sessions, user_id, await rental_price(sessions, 7))
    async with sessions() as session:
        service = RentalService(session=session, rates=RATES, rental_days=frozenset({7}))
        rental = await service.rent(user_id, "pro", RentalCreate(service="whatsapp", days=7))
        await session.commit()
    await rental_worker.acquire(transactions(sessions), provider, AcquireRental(rental_id=rental.id))
    return rental.id


async def test_a_rental_receives_pushed_messages_and_its_poll_stores_none_twice(
    client: AsyncClient, ready: Sessions, tv: Harness
) -> None:
    rental_id = await rented(client, ready, tv.provider)
    provider_id = await sold_by_textverified(ready, Rental, rental_id)
    tv.fake.deliver_sms(provider_id, "Telegram code 11223")
    tv.fake.deliver_sms(provider_id, "Telegram code 44556")
    first, second = tv.fake.sms[provider_id]

    assert await delivered(client, ready, pushed_like(first, provider_id)) is Outcome.PROCESSED
    assert [(t, c) for _, t, c in await rental_messages(ready, rental_id)] == [("Telegram code 11223", "11223")]
    assert await delivered(client, ready, pushed_like(second, provider_id)) is Outcome.PROCESSED

    expected = await rental_messages(ready, rental_id)
    assert [(key[:5], t, c) for key, t, c in expected] == [
        ("push-", "Telegram code 11223", "11223"),
        ("push-", "Telegram code 44556", "44556"),
    ]
    # The poll lists both under TextVerified's ids: the same SMS, stored (and sent to partners) once.
    assert await rental_worker.poll(transactions(ready), tv.provider, PollRentalMessages(rental_id=rental_id))
    assert await rental_messages(ready, rental_id) == expected
    settled = await stored(ready, (await ready_event_ids(ready))[0])
    assert (settled.status, settled.detail) == ("processed", f"sms for rental {rental_id}")


async def ready_event_ids(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(ProviderEvent.event_id).order_by(ProviderEvent.id))).all())


async def test_one_sms_pushed_in_two_events_is_one_rental_message(client: AsyncClient, ready: Sessions) -> None:
    simulator = SimulatorProvider(ready)
    rental_id = await rented(client, ready, simulator)
    provider_id = (await load_rental(ready, rental_id)).provider_id
    one = sms_event(provider_id, "Code 778899", created_at="2026-12-01T10:00:00Z")
    resent = sms_event(provider_id, "Code 778899", created_at="2026-12-01T10:00:00Z")

    outcomes = [await delivered(client, ready, p) for p in (one, resent)]

    assert outcomes == [Outcome.PROCESSED, Outcome.PROCESSED]
    assert [(text, code) for _, text, code in await rental_messages(ready, rental_id)] == [("Code 778899", "778899")]


async def load_rental(sessions: Sessions, rental_id: uuid.UUID) -> Rental:
    async with sessions() as session:
        found = await RentalService(session=session).load(rental_id)
        assert found is not None
        return found


# --- a push that overtakes our purchase --------------------------------------------------------------------------


async def test_an_sms_before_the_number_is_recorded_waits_then_completes(client: AsyncClient, ready: Sessions) -> None:
    verification_id = await funded_verification(client, ready)  # pending: its number not yet recorded
    payload = sms_event("tv_early_1", "Your code is 246810")
    await push(client, payload)

    assert await run(ready, payload["id"], attempts=5) is Outcome.WAITING
    assert await run(ready, payload["id"], attempts=5) is Outcome.WAITING
    assert (await stored(ready, payload["id"])).match_attempts == 2
    # The acquire job commits the provider's answer.
    number = ProviderNumber(
        provider_id="tv_early_1",
        kind=ReservationKind.VERIFICATION,
        service="WhatsApp",
        phone_number="+12015550123",
        state=ProviderState.PENDING,
        created_at=utcnow(),
        expires_at=None,
    )
    async with ready() as session:
        assert await VerificationService(session=session).assign(verification_id, number)
        await session.commit()

    assert await run(ready, payload["id"], attempts=5) is Outcome.PROCESSED
    verification = await load(ready, verification_id)
    assert verification.status == "completed"
    assert [code for _, _, code in await verification_messages(ready, verification_id)] == ["246810"]


async def test_an_sms_no_reservation_of_ours_ever_holds_ends_unmatched(client: AsyncClient, ready: Sessions) -> None:
    payload, orphan = sms_event("tv_not_ours", "Code 1234"), sms_event(None, "Code 1234")
    await push(client, payload)
    await push(client, orphan)

    outcomes = [await run(ready, payload["id"], attempts=3) for _ in range(4)]

    assert outcomes == [Outcome.WAITING, Outcome.WAITING, Outcome.UNMATCHED, Outcome.SETTLED_BEFORE]
    settled = await stored(ready, payload["id"])
    assert (settled.status, settled.match_attempts) == ("unmatched", 2)
    assert settled.detail == "no verification or rental holds reservation tv_not_ours"
    assert await run(ready, orphan["id"], attempts=3) is Outcome.UNMATCHED  # nothing to wait for
    async with ready() as session:
        assert (await session.scalars(select(VerificationMessage))).all() == []


# --- reservation and billing events ------------------------------------------------------------------------------


async def test_reservation_billing_and_back_order_events_are_kept_and_change_nothing(
    client: AsyncClient, ready: Sessions
) -> None:
    verification_id = await funded_verification(client, ready)
    simulator = SimulatorProvider(ready)
    await verification_worker.acquire(transactions(ready), simulator, AcquireNumber(verification_id=verification_id))
    before = await load(ready, verification_id)
    assert before.provider_id
    pushes = {
        "ours": event("v2.reservation.created", {"id": before.provider_id, "type": "verification"}),
        "not ours": event("v2.reservation.created", {"id": "tv_other", "type": "rental"}),
        "renewed": event("v2.rental.billingcycle.renewed", {"billingCycleId": "bc_1"}),
        "expired": event("v2.rental.billingcycle.expired", {"billingCycleId": "bc_1"}),
        "back order": event("v2.rental.backorder.fulfilled", {"backOrderId": "bo_1"}),
    }

    outcomes = {name: await delivered(client, ready, payload) for name, payload in pushes.items()}

    assert set(outcomes.values()) == {Outcome.IGNORED}
    details = {name: (await stored(ready, payload["id"])).detail for name, payload in pushes.items()}
    assert details == {
        "ours": f"reservation {before.provider_id} is verification {verification_id}",
        "not ours": "reservation tv_other (rental) not ours",
        "renewed": "billing cycle bc_1: our rentals belong to none",
        "expired": "billing cycle bc_1: our rentals belong to none",
        "back order": "back order bo_1: we never order back orders",
    }
    after = await load(ready, verification_id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)
