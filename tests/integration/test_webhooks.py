"""Partner webhook endpoints through the API, and the events recorded in the transaction of the change they report
(verifications, rentals, wallet), on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from namaskah.db.base import utcnow
from namaskah.domain.accounts.models import User
from namaskah.domain.rentals import worker as rental_worker
from namaskah.domain.rentals.jobs import AcquireRental
from namaskah.domain.rentals.schemas import RentalCreate
from namaskah.domain.rentals.service import RentalService
from namaskah.domain.verifications import worker as verification_worker
from namaskah.domain.verifications.jobs import AcquireNumber, PollMessages
from namaskah.domain.verifications.service import VerificationService
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.domain.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent
from namaskah.domain.webhooks.schemas import EndpointCreate
from namaskah.domain.webhooks.service import WebhookEndpointService
from namaskah.domain.webhooks.ssrf import Resolver, UrlPolicy, system_resolver
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.providers.base import ReservationKind
from namaskah.providers.simulator import SimulatorProvider
from tests.integration.test_admin import headers_for
from tests.integration.test_catalog import RATES, synced
from tests.integration.test_verifications import bought, customer, fund, price_of, transactions

Sessions = async_sessionmaker[AsyncSession]
OPEN = UrlPolicy(allow_http=True, allow_private=True)
PUBLIC_URL = "https://93.184.216.34/hooks/namaskah"  # an address literal: creating it needs no DNS


async def pro_user(sessions: Sessions, email: str = "partner@example.com", tier: str = "pro") -> uuid.UUID:
    async with sessions() as session:
        user = User(email=email, password_hash="not-a-real-hash", tier=tier)
        session.add(user)
        await session.commit()
        return user.id


async def endpoint_for(
    sessions: Sessions,
    user_id: uuid.UUID,
    url: str,
    *events: EventType,
    policy: UrlPolicy = OPEN,
    resolver: Resolver = system_resolver,
) -> tuple[uuid.UUID, str]:
    """An endpoint made through the service (by default with a policy that lets it point at a local receiver)."""
    async with sessions() as session:
        service = WebhookEndpointService(session=session, policy=policy, resolver=resolver)
        request = EndpointCreate(url=url, events=list(events or EventType))
        endpoint, secret = await service.register(user_id, "pro", request)
        await session.commit()
        return endpoint.id, secret


async def counts(sessions: Sessions) -> tuple[int, int, int]:
    """(events, deliveries, delivery jobs in the outbox)."""
    async with sessions() as session:
        events = await session.scalar(select(func.count()).select_from(WebhookEvent))
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        jobs = await session.scalar(select(func.count()).where(OutboxMessage.actor == "webhooks.deliver"))
        return events or 0, deliveries or 0, jobs or 0


async def recorded(sessions: Sessions, event_type: str | None = None) -> list[dict]:
    """The bodies of the recorded events, oldest first."""
    async with sessions() as session:
        query = select(WebhookEvent.body).order_by(WebhookEvent.id)
        if event_type is not None:
            query = query.where(WebhookEvent.type == event_type)
        return [json.loads(body) for body in (await session.scalars(query)).all()]


async def delivery_jobs(sessions: Sessions) -> list[dict]:
    async with sessions() as session:
        query = select(OutboxMessage.payload).where(OutboxMessage.actor == "webhooks.deliver")
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


async def pro_headers(client: AsyncClient, sessions: Sessions, email: str = "ada@example.com") -> dict[str, str]:
    headers, _ = await customer(client, sessions, email)
    return headers


@pytest.fixture
async def ready(session_factory: Sessions) -> Sessions:
    await synced(session_factory)
    return session_factory


# --- the routes -------------------------------------------------------------------------------------------------


async def test_an_endpoint_is_created_with_a_secret_shown_once_and_stored_encrypted(
    client: AsyncClient, session_factory: Sessions
) -> None:
    headers = await pro_headers(client, session_factory)
    body = {"url": PUBLIC_URL, "events": ["verification.completed", "wallet.credited", "verification.completed"]}

    created = await client.post("/v1/webhook-endpoints", json=body, headers=headers)

    assert created.status_code == 201, created.text
    answer = created.json()
    secret = answer["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # a secret the Standard Webhooks library takes
    assert (answer["url"], answer["events"], answer["enabled"]) == (
        PUBLIC_URL, ["verification.completed", "wallet.credited"], True
    )  # fmt: skip
    listed = await client.get("/v1/webhook-endpoints", headers=headers)
    shown = await client.get(f"/v1/webhook-endpoints/{answer['id']}", headers=headers)
    assert (listed.status_code, shown.status_code) == (200, 200)
    assert listed.json()["total"] == 1
    assert [item["id"] for item in listed.json()["items"]] == [answer["id"]]
    for text_ in (listed.text, shown.text):
        assert secret not in text_
        assert secret.removeprefix("whsec_") not in text_
        assert "secret" not in text_
    async with session_factory() as session:
        stored = await session.scalar(text("SELECT secret FROM webhook_endpoints"))
    assert stored is not None
    assert secret.removeprefix("whsec_") not in stored  # ciphertext at rest


async def test_a_free_tier_user_gets_403_and_nothing_is_written(client: AsyncClient, session_factory: Sessions) -> None:
    headers = await headers_for(client, "free@example.com")

    refused = await client.post(
        "/v1/webhook-endpoints", json={"url": PUBLIC_URL, "events": ["wallet.credited"]}, headers=headers
    )

    assert (refused.status_code, refused.json()["code"]) == (403, "feature_not_in_tier")
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1/hook", "webhook_url_forbidden"),
        ("https://10.20.30.40/hook", "webhook_url_forbidden"),
        ("https://169.254.169.254/latest/meta-data/", "webhook_url_forbidden"),
        ("https://[::1]/hook", "webhook_url_forbidden"),
        ("https://[::ffff:127.0.0.1]/hook", "webhook_url_forbidden"),
        ("https://[fd00:ec2::254]/hook", "webhook_url_forbidden"),
        ("https://localhost:8443/hook", "webhook_url_forbidden"),  # a name that resolves to loopback
        ("https://2130706433/hook", "webhook_url_forbidden"),  # 127.0.0.1 written as one number
        ("http://93.184.216.34/hook", "webhook_url_invalid"),  # https only outside dev settings
        ("https://user:pass@93.184.216.34/hook", "webhook_url_invalid"),
        ("https://no-such-partner.invalid/hook", "webhook_url_unresolvable"),
    ],
)
async def test_internal_and_malformed_urls_are_refused_at_creation(
    client: AsyncClient, session_factory: Sessions, url: str, code: str
) -> None:
    headers = await pro_headers(client, session_factory)

    refused = await client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": ["wallet.credited"]}, headers=headers
    )

    assert (refused.status_code, refused.json()["code"]) == (422, code), refused.text
    assert refused.json()["detail"]
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


async def test_bad_bodies_are_422(client: AsyncClient, session_factory: Sessions) -> None:
    headers = await pro_headers(client, session_factory)
    for body in (
        {"url": PUBLIC_URL, "events": ["verification.exploded"]},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL},
        {"url": PUBLIC_URL, "events": ["wallet.credited"], "secret": "whsec_mine"},
    ):
        response = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), body


async def test_api_keys_need_the_webhooks_scope(client: AsyncClient, session_factory: Sessions) -> None:
    headers = await pro_headers(client, session_factory)
    keys = {}
    for scopes in (["wallet:read"], ["webhooks:write"]):
        created = await client.post("/v1/api-keys", json={"name": scopes[0], "scopes": scopes}, headers=headers)
        keys[scopes[0]] = {"X-API-Key": created.json()["key"]}
    body = {"url": PUBLIC_URL, "events": ["wallet.credited"]}

    refused = await client.post("/v1/webhook-endpoints", json=body, headers=keys["wallet:read"])
    listed = await client.get("/v1/webhook-endpoints", headers=keys["wallet:read"])
    accepted = await client.post("/v1/webhook-endpoints", json=body, headers=keys["webhooks:write"])

    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    assert (listed.status_code, listed.json()["code"]) == (403, "insufficient_scope")
    assert accepted.status_code == 201, accepted.text


async def test_another_users_endpoint_and_delivery_are_404(client: AsyncClient, session_factory: Sessions) -> None:
    owner = await pro_headers(client, session_factory)
    created = await client.post(
        "/v1/webhook-endpoints", json={"url": PUBLIC_URL, "events": ["wallet.credited"]}, headers=owner
    )
    endpoint_id = created.json()["id"]
    owner_id = uuid.UUID((await client.get("/v1/me", headers=owner)).json()["id"])
    async with session_factory() as session:
        await WalletService(session=session).credit(owner_id, 100, kind=EntryKind.GRANT, reference="grant:404")
        await session.commit()
        delivery_id = await session.scalar(select(WebhookDelivery.id))
    intruder = await pro_headers(client, session_factory, "eve@example.com")

    answers = [
        await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=intruder),
        await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=intruder),
        await client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=intruder),
        await client.post(f"/v1/webhook-endpoints/{endpoint_id}/enable", headers=intruder),
        await client.post(f"/v1/webhook-deliveries/{delivery_id}/replay", headers=intruder),
        await client.post(f"/v1/webhook-deliveries/{uuid.uuid4()}/replay", headers=owner),
    ]

    assert [(a.status_code, a.json()["code"]) for a in answers] == [(404, "webhook_endpoint_not_found")] * 4 + [
        (404, "webhook_delivery_not_found")
    ] * 2
    assert (await client.get("/v1/webhook-endpoints", headers=intruder)).json() == {"items": [], "total": 0}
    assert (await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=owner)).status_code == 200
    assert await counts(session_factory) == (1, 1, 1)  # the intruder's replay requested nothing


async def test_deleting_an_endpoint_removes_its_deliveries(client: AsyncClient, session_factory: Sessions) -> None:
    headers = await pro_headers(client, session_factory)
    created = await client.post(
        "/v1/webhook-endpoints", json={"url": PUBLIC_URL, "events": ["wallet.credited"]}, headers=headers
    )
    user_id = uuid.UUID((await client.get("/v1/me", headers=headers)).json()["id"])
    async with session_factory() as session:
        await WalletService(session=session).credit(user_id, 100, kind=EntryKind.GRANT, reference="grant:delete")
        await session.commit()

    deleted = await client.delete(f"/v1/webhook-endpoints/{created.json()['id']}", headers=headers)
    again = await client.delete(f"/v1/webhook-endpoints/{created.json()['id']}", headers=headers)

    assert deleted.status_code == 204
    assert (again.status_code, again.json()["code"]) == (404, "webhook_endpoint_not_found")
    assert (await counts(session_factory))[1] == 0


# --- events, in the transaction of their change -----------------------------------------------------------------


async def test_an_event_is_recorded_only_if_its_transaction_commits(session_factory: Sessions) -> None:
    user_id = await pro_user(session_factory)
    wanted, _ = await endpoint_for(session_factory, user_id, PUBLIC_URL, EventType.WALLET_CREDITED)
    await endpoint_for(session_factory, user_id, PUBLIC_URL, EventType.VERIFICATION_COMPLETED)

    async with session_factory() as session:
        await WalletService(session=session).credit(user_id, 500, kind=EntryKind.TOPUP, reference="paystack:gone")
        await session.rollback()
    assert await counts(session_factory) == (0, 0, 0)

    async with session_factory() as session:
        await WalletService(session=session).credit(user_id, 500, kind=EntryKind.TOPUP, reference="paystack:kept")
        await session.commit()

    assert await counts(session_factory) == (1, 1, 1)
    [body] = await recorded(session_factory)
    assert body["type"] == "wallet.credited"
    assert (body["data"]["amount"], body["data"]["kind"], body["data"]["reference"]) == (500, "topup", "paystack:kept")
    assert body["data"]["balance_after"] == 500
    assert set(body) == {"type", "timestamp", "data"}
    async with session_factory() as session:
        delivery = (await session.scalars(select(WebhookDelivery))).one()
    assert (delivery.endpoint_id, delivery.status) == (wanted, "pending")
    assert await delivery_jobs(session_factory) == [{"delivery_id": str(delivery.id)}]
    # The same booking reported again (its reference is booked once) is no second event.
    async with session_factory() as session:
        await WalletService(session=session).credit(user_id, 500, kind=EntryKind.TOPUP, reference="paystack:kept")
        await session.commit()
    assert await counts(session_factory) == (1, 1, 1)


async def test_a_savepoint_rolled_back_takes_its_event_with_it(session_factory: Sessions) -> None:
    user_id = await pro_user(session_factory)
    await endpoint_for(session_factory, user_id, PUBLIC_URL, EventType.WALLET_CREDITED)
    async with session_factory() as session:
        savepoint = await session.begin_nested()
        await WalletService(session=session).credit(user_id, 1, kind=EntryKind.GRANT, reference="grant:a")
        await savepoint.rollback()  # the caller changed its mind about this part
        await WalletService(session=session).credit(user_id, 2, kind=EntryKind.GRANT, reference="grant:b")
        await session.commit()
    assert [body["data"]["reference"] for body in await recorded(session_factory)] == ["grant:b"]
    assert await counts(session_factory) == (1, 1, 1)


async def test_nobody_listening_records_nothing(session_factory: Sessions) -> None:
    free_user = await pro_user(session_factory, "was-pro@example.com")
    await endpoint_for(session_factory, free_user, PUBLIC_URL, EventType.WALLET_CREDITED)
    disabled_user = await pro_user(session_factory, "disabled@example.com")
    disabled, _ = await endpoint_for(session_factory, disabled_user, PUBLIC_URL, EventType.WALLET_CREDITED)
    other_user = await pro_user(session_factory, "other@example.com")
    await endpoint_for(session_factory, other_user, PUBLIC_URL, EventType.RENTAL_MESSAGE)
    async with session_factory() as session:
        # Downgraded after creating the endpoint: the tier no longer has webhooks.
        await session.execute(update(User).where(User.id == free_user).values(tier="free"))
        await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == disabled).values(enabled=False))
        for n, user_id in enumerate((free_user, disabled_user, other_user)):
            await WalletService(session=session).credit(user_id, 10, kind=EntryKind.GRANT, reference=f"grant:{n}")
        await session.commit()
    assert await counts(session_factory) == (0, 0, 0)


async def test_verification_events_carry_the_verification(ready: Sessions) -> None:
    user_id = await pro_user(ready)
    await endpoint_for(
        ready,
        user_id,
        PUBLIC_URL,
        EventType.VERIFICATION_COMPLETED,
        EventType.VERIFICATION_CANCELLED,
        EventType.VERIFICATION_EXPIRED,
    )
    await fund(ready, user_id, 3 * await price_of(ready, tier="free"))
    simulator, tx = SimulatorProvider(ready), transactions(ready)
    completed, cancelled, expired = [await bought(ready, user_id) for _ in range(3)]
    for verification_id in (completed, cancelled, expired):
        await verification_worker.acquire(tx, simulator, AcquireNumber(verification_id=verification_id))
    async with ready() as session:
        number = (await VerificationService(session=session).load(completed)).phone_number  # type: ignore[union-attr]
    assert number is not None

    await simulator.deliver(number, "Your code is 482913")
    assert await verification_worker.poll(tx, simulator, PollMessages(verification_id=completed)) is False
    async with ready() as session:
        await VerificationService(session=session).cancel(user_id, cancelled)
        await session.commit()
    async with ready() as session:
        await VerificationService(session=session).expire_due(utcnow() + timedelta(hours=1), only=expired)
        await session.commit()
    # Reported again (a second poll, a second sweep): still one event each.
    await verification_worker.poll(tx, simulator, PollMessages(verification_id=completed))

    bodies = await recorded(ready)
    assert [(b["type"], b["data"]["id"], b["data"]["status"]) for b in bodies] == [
        ("verification.completed", str(completed), "completed"),
        ("verification.cancelled", str(cancelled), "cancelled"),
        ("verification.expired", str(expired), "expired"),
    ]
    done = bodies[0]["data"]
    assert (done["code"], done["phone_number"], [m["text"] for m in done["messages"]]) == (
        "482913", number, ["Your code is 482913"]
    )  # fmt: skip
    # The refunds of the cancelled and expired ones are no wallet.credited events: nobody subscribed to those.
    assert await counts(ready) == (3, 3, 3)


async def test_rental_messages_and_a_rental_about_to_end_are_events(ready: Sessions) -> None:
    user_id = await pro_user(ready)
    await endpoint_for(ready, user_id, PUBLIC_URL, EventType.RENTAL_MESSAGE, EventType.RENTAL_EXPIRING)
    await fund(ready, user_id, 10_000_000)
    async with ready() as session:
        service = RentalService(session=session, rates=RATES, rental_days=SimulatorProvider.rental_days)
        rental = await service.rent(user_id, "pro", RentalCreate(service="whatsapp", days=1))
        await session.commit()
    simulator, tx = SimulatorProvider(ready), transactions(ready)
    await rental_worker.acquire(tx, simulator, AcquireRental(rental_id=rental.id))
    async with ready() as session:
        active = await RentalService(session=session).load(rental.id)
    assert active is not None
    assert active.phone_number is not None

    await simulator.deliver(active.phone_number, "Telegram code 55555")
    async with ready() as session:
        messages = await simulator.messages(active.provider_id or "", ReservationKind.RENTAL)
        await RentalService(session=session).record_messages(rental.id, messages)
        await RentalService(session=session).record_messages(rental.id, messages)  # seen again: no new event
        await session.commit()
    for minutes in (0, 30, 61):  # sweeps: 1 h before the end, and again; then past it
        async with ready() as session:
            await RentalService(session=session).expire_due(active.ends_at - timedelta(minutes=60 - minutes))
            await session.commit()

    bodies = await recorded(ready)
    assert [b["type"] for b in bodies] == ["rental.message", "rental.expiring"]
    message, expiring = bodies[0]["data"], bodies[1]["data"]
    assert (message["rental_id"], message["text"], message["code"]) == (str(rental.id), "Telegram code 55555", "55555")
    assert message["phone_number"] == active.phone_number
    assert (expiring["id"], expiring["status"]) == (str(rental.id), "active")
