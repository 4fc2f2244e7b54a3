"""`POST /v1/providers/textverified/events` on PostgreSQL: signed pushes stored once with their job requested, and
every refusal (bad signature, no secret, malformed, too large) storing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient, Response
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.app import create_app
from namaskah.db.engine import create_session_factory
from namaskah.domain.provider_events import worker
from namaskah.domain.provider_events.jobs import ProcessProviderEvent
from namaskah.domain.provider_events.models import ProviderEvent
from namaskah.domain.verifications import worker as verification_worker
from namaskah.domain.verifications.jobs import AcquireNumber
from namaskah.domain.verifications.models import VerificationMessage
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.providers.simulator import SimulatorProvider
from tests.conftest import serve_in_loop
from tests.integration.test_catalog import synced
from tests.integration.test_verifications import bought, customer, fund, load, price_of, transactions
from tests.support.databases import make_settings
from tests.support.textverified_pushes import PATH, SECRET, body_of, event, signature, signed, sms_event

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def app(session_factory: Sessions, stub_broker: StubBroker) -> Litestar:
    settings = make_settings(TEXTVERIFIED_WEBHOOK_SECRET=SECRET)
    return create_app(settings, session_factory=session_factory, broker=stub_broker)


async def push(client: AsyncClient, payload: dict, headers: dict[str, str] | None = None) -> Response:
    body = body_of(payload)
    return await client.post(PATH, content=body, headers=signed(body) if headers is None else headers)


async def events(sessions: Sessions) -> list[ProviderEvent]:
    async with sessions() as session:
        return list((await session.scalars(select(ProviderEvent).order_by(ProviderEvent.id))).all())


async def jobs(sessions: Sessions) -> list[dict]:
    async with sessions() as session:
        query = select(OutboxMessage.payload).where(OutboxMessage.actor == ProcessProviderEvent.actor_name)
        return list((await session.scalars(query)).all())


async def test_a_signed_push_is_stored_pending_with_its_job_and_answered_at_once(
    client: AsyncClient, session_factory: Sessions
) -> None:
    payload = sms_event("tv_res_1", "Your code is 482913", code="482913")

    response = await push(client, payload)

    assert response.status_code == 200, response.text
    assert response.json() == {"id": payload["id"], "duplicate": False}
    (stored,) = await events(session_factory)
    assert (stored.provider, stored.event_id, stored.event_type) == ("textverified", payload["id"], "v2.sms.received")
    assert (stored.idempotency_key, stored.delivery_attempt, stored.status) == (payload["idempotencyKey"], 1, "pending")
    assert stored.payload == payload
    assert stored.occurred_at.utcoffset() is not None
    assert await jobs(session_factory) == [{"event_id": str(stored.id)}]


async def test_a_redelivery_is_acknowledged_and_changes_nothing(client: AsyncClient, session_factory: Sessions) -> None:
    first = sms_event("tv_res_1", "Your code is 482913")
    # The vendor's retry: the same event, the next attempt (so another body and another signature).
    again = event("v2.sms.received", first["data"], event_id=first["id"], attempt=2)

    answers = [await push(client, first), await push(client, again), await push(client, first)]

    assert [(a.status_code, a.json()["duplicate"]) for a in answers] == [(200, False), (200, True), (200, True)]
    (stored,) = await events(session_factory)
    assert stored.delivery_attempt == 1
    assert len(await jobs(session_factory)) == 1


def _resigned_prefix(body: bytes, prefix: str) -> str:
    return prefix + signature(body).removeprefix("HMAC-SHA512=")


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: {"X-Webhook-Signature": signature(body, "whsec_not_ours")}, id="forged"),
        pytest.param(lambda body: {}, id="missing-header"),
        pytest.param(lambda body: {"X-Webhook-Signature": _resigned_prefix(body, "HMAC-SHA256=")}, id="wrong-prefix"),
        pytest.param(lambda body: {"X-Webhook-Signature": _resigned_prefix(body, "")}, id="no-prefix"),
        pytest.param(lambda body: {"X-Webhook-Signature": "HMAC-SHA512=%%%"}, id="not-base64"),
        pytest.param(lambda body: signed(body.replace(b"482913", b"000000")), id="body-changed-after-signing"),
    ],
)
async def test_a_bad_signature_is_401_and_stores_nothing(client: AsyncClient, session_factory: Sessions, forge) -> None:
    body = body_of(sms_event("tv_res_1", "Your code is 482913"))

    response = await client.post(PATH, content=body, headers=forge(body))

    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "bad_signature"
    assert await events(session_factory) == []
    assert await jobs(session_factory) == []


async def test_a_signed_body_that_is_not_a_textverified_event_is_400_and_stores_nothing(
    client: AsyncClient, session_factory: Sessions
) -> None:
    pascal = b'{"Event":"v2.sms.received","Id":"evt_1","Data":{"ReservationId":"tv_res_1"}}'
    for body in (b"{not json", pascal):
        response = await client.post(PATH, content=body, headers=signed(body))
        assert (response.status_code, response.json()["code"]) == (400, "malformed_event"), response.text
    assert await events(session_factory) == []


async def test_a_body_over_64_kib_is_413_and_stores_nothing(client: AsyncClient, session_factory: Sessions) -> None:
    body = body_of(event("v2.test", {"padding": "x" * 70_000}))

    response = await client.post(PATH, content=body, headers=signed(body))

    assert response.status_code == 413
    assert await events(session_factory) == []


async def test_an_unknown_event_type_is_stored_acknowledged_and_ignored(
    client: AsyncClient, session_factory: Sessions
) -> None:
    payload = event("v2.test", {"Message": "hello from the dashboard"})

    response = await push(client, payload)

    assert (response.status_code, response.json()["duplicate"]) == (200, False)
    (stored,) = await events(session_factory)
    assert (stored.event_type, stored.payload["data"]) == ("v2.test", {"Message": "hello from the dashboard"})
    outcome = await worker.process(transactions(session_factory), _job(stored), match_attempts=3)
    assert outcome is worker.Outcome.IGNORED
    (settled,) = await events(session_factory)
    assert (settled.status, settled.detail) == ("ignored", "event type unknown to us")
    assert settled.processed_at is not None


def _job(stored: ProviderEvent) -> ProcessProviderEvent:
    return ProcessProviderEvent(event_id=stored.id)


@pytest.mark.parametrize("environment", ["test", "production"])
async def test_without_a_secret_the_route_refuses_with_503_and_stores_nothing(
    session_factory: Sessions, stub_broker: StubBroker, environment: str
) -> None:
    overrides = {"APP_ENV": environment}
    if environment == "production":
        overrides |= {"REDIS_URL": "redis://127.0.0.1:6379/9", "SECRET_KEY": "p" * 40}
    settings = make_settings(**overrides)
    assert settings.textverified_webhook_secret == ""
    body = body_of(sms_event("tv_res_1", "Your code is 482913"))
    async with serve_in_loop(create_app(settings, session_factory=session_factory, broker=stub_broker)) as client:
        # Signed under the empty key, which anyone can do: exactly why no secret means no route.
        response = await client.post(PATH, content=body, headers=signed(body, ""))

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "provider_events_not_configured"
    assert await events(session_factory) == []


# --- the same event delivered many times at once, on real connections ---------------------------------------------


@pytest.fixture
async def live(isolated_database: str) -> AsyncIterator[tuple[AsyncClient, Sessions]]:
    engine = create_async_engine(isolated_database, pool_size=25, max_overflow=0)
    sessions = create_session_factory(engine)
    settings = make_settings(DATABASE_URL=isolated_database, TEXTVERIFIED_WEBHOOK_SECRET=SECRET)
    app = create_app(settings, engine=engine, session_factory=sessions, broker=StubBroker())
    async with serve_in_loop(app) as client:
        yield client, sessions
    await engine.dispose()


async def test_twenty_concurrent_deliveries_store_it_once_and_it_is_processed_once(
    live: tuple[AsyncClient, Sessions],
) -> None:
    client, sessions = live
    await synced(sessions)
    _, user_id = await customer(client, sessions)
    await fund(sessions, user_id, await price_of(sessions, tier="free"))
    verification_id = await bought(sessions, user_id)
    simulator = SimulatorProvider(sessions)
    await verification_worker.acquire(transactions(sessions), simulator, AcquireNumber(verification_id=verification_id))
    provider_id = (await load(sessions, verification_id)).provider_id
    first = sms_event(provider_id, "Your WhatsApp code is 590113", code="590113")
    deliveries = [event("v2.sms.received", first["data"], event_id=first["id"], attempt=n) for n in range(1, 21)]

    answers = await asyncio.gather(*(push(client, payload) for payload in deliveries))

    assert [a.status_code for a in answers] == [200] * 20
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 19
    (stored,) = await events(sessions)
    assert await jobs(sessions) == [{"event_id": str(stored.id)}]
    # The job itself delivered more than once (outbox fast path and sweep), its runs racing.
    outcomes = await asyncio.gather(
        *(worker.process(transactions(sessions), _job(stored), match_attempts=3) for _ in range(5))
    )
    assert sorted(outcomes) == sorted([worker.Outcome.PROCESSED] + [worker.Outcome.SETTLED_BEFORE] * 4)
    verification = await load(sessions, verification_id)
    assert verification.status == "completed"
    async with sessions() as session:
        messages = (await session.scalars(select(VerificationMessage.code))).all()
        assert list(messages) == ["590113"]
        assert await session.scalar(select(func.count()).select_from(ProviderEvent)) == 1
    (settled,) = await events(sessions)
    assert (settled.status, settled.detail) == ("processed", f"sms for verification {verification_id}")


async def test_two_events_are_two_rows_even_with_the_same_data(client: AsyncClient, session_factory: Sessions) -> None:
    # Deduplication is by the vendor's event id, not by content (the job makes one message of one SMS).
    one, other = sms_event("tv_res_1", "a"), sms_event("tv_res_1", "a")
    other["data"] = one["data"]

    assert [(await push(client, p)).json()["duplicate"] for p in (one, other)] == [False, False]
    assert {e.event_id for e in await events(session_factory)} == {one["id"], other["id"]}
    assert len(await jobs(session_factory)) == 2
