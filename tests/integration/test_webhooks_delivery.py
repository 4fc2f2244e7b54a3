"""Webhook deliveries through the worker logic against a real local receiver: signed per Standard Webhooks,
retried on failure with every attempt stored, no redirects, replay with the same webhook-id, the SSRF guard at
delivery time, disabling after a long run of failures (with a mail), races between duplicate jobs, the sweep."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from standardwebhooks import Webhook

from namaskah.db.base import utcnow
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.domain.webhooks import worker
from namaskah.domain.webhooks.attempts import DeliveryRules, WebhookAttemptService
from namaskah.domain.webhooks.jobs import DeliverWebhook
from namaskah.domain.webhooks.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from namaskah.domain.webhooks.retries import RetryPolicy
from namaskah.domain.webhooks.sender import WebhookSender, build_client, url_policy
from namaskah.domain.webhooks.ssrf import UrlPolicy
from namaskah.domain.webhooks.sweeper import sweep_due_deliveries
from namaskah.lib.mail import SendMail
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.lib.outbox.relay import OutboxRelay
from tests.integration.test_verifications import customer, transactions
from tests.integration.test_webhooks import counts, delivery_jobs, endpoint_for, pro_user
from tests.support.databases import make_settings
from tests.support.webhook_receiver import Receiver, receiving

Sessions = async_sessionmaker[AsyncSession]
OPEN_SETTINGS = make_settings(WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_PRIVATE_HOSTS="true", WEBHOOK_TIMEOUT="3")
STRICT_SETTINGS = make_settings(WEBHOOK_TIMEOUT="3")
RULES = DeliveryRules.from_settings(OPEN_SETTINGS)


class Clock:
    """The worker's time, moved by the test instead of waiting."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with build_client(OPEN_SETTINGS) as client:
        yield WebhookSender(client, url_policy(OPEN_SETTINGS), timeout=3)


@pytest.fixture
def receiver() -> AsyncIterator[Receiver]:
    with receiving() as running:
        yield running


async def credited(sessions: Sessions, user_id: uuid.UUID, amount: int = 700) -> DeliverWebhook:
    """A wallet credit (a `wallet.credited` event) and the delivery job it requested."""
    async with sessions() as session:
        reference = f"grant:{uuid.uuid4()}"
        await WalletService(session=session).credit(user_id, amount, kind=EntryKind.GRANT, reference=reference)
        await session.commit()
    return DeliverWebhook.decode((await delivery_jobs(sessions))[-1])


async def delivery(sessions: Sessions, job: DeliverWebhook) -> WebhookDelivery:
    async with sessions() as session:
        found = await session.get(WebhookDelivery, job.delivery_id, populate_existing=True)
        assert found is not None
        return found


async def attempts(sessions: Sessions, job: DeliverWebhook) -> list[tuple[int, int | None, bool, str | None]]:
    async with sessions() as session:
        rows = await session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == job.delivery_id).order_by(WebhookAttempt.number)
        )
        return [(a.number, a.status_code, a.succeeded, a.error and a.error.partition(":")[0]) for a in rows]


async def subscribed(
    sessions: Sessions, receiver: Receiver, email: str = "partner@example.com"
) -> tuple[uuid.UUID, str]:
    user_id = await pro_user(sessions, email)
    _, secret = await endpoint_for(sessions, user_id, receiver.url(), EventType.WALLET_CREDITED)
    return user_id, secret


def verified(secret: str, receiver: Receiver, index: int = -1) -> dict:
    request = receiver.requests[index]
    return Webhook(secret).verify(request.body, request.headers)  # type: ignore[no-any-return]


async def test_a_receiver_gets_a_signed_webhook(
    session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    user_id, secret = await subscribed(session_factory, receiver)
    job = await credited(session_factory, user_id, 700)

    assert await worker.deliver(transactions(session_factory), sender, job, RULES) is None

    assert len(receiver.requests) == 1
    body = verified(secret, receiver)
    assert body["type"] == "wallet.credited"
    assert (body["data"]["amount"], body["data"]["currency"]) == (700, "NGN")
    request = receiver.requests[0]
    assert request.headers["webhook-id"] == f"msg_{job.delivery_id.hex}"
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hook"
    with pytest.raises(Exception, match="signature"):  # another secret does not verify it
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)
    done = await delivery(session_factory, job)
    assert (done.status, done.attempts, done.last_status_code, done.lease_until) == ("succeeded", 1, 200, None)
    assert await attempts(session_factory, job) == [(1, 200, True, None)]
    # The same job delivered again (at-least-once) sends nothing more.
    assert await worker.deliver(transactions(session_factory), sender, job, RULES) is None
    assert len(receiver.requests) == 1


async def test_a_failing_receiver_gets_it_once_it_recovers_and_every_attempt_is_kept(
    session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    user_id, secret = await subscribed(session_factory, receiver)
    job = await credited(session_factory, user_id)
    receiver.plan(500, 503)
    clock, tx = Clock(), transactions(session_factory)

    first = await worker.deliver(tx, sender, job, RULES, clock=clock, rand=lambda: 0.5)
    assert first == pytest.approx(20.0)  # the first retry waits the base delay (no jitter at 0.5)
    pending = await delivery(session_factory, job)
    assert (pending.status, pending.next_attempt_at) == ("pending", clock.now + timedelta(seconds=20))
    # The retry's message arriving early (or a duplicate of the first) sends nothing.
    assert await worker.deliver(tx, sender, job, RULES, clock=clock) is None
    assert len(receiver.requests) == 1

    clock.advance(first)
    second = await worker.deliver(tx, sender, job, RULES, clock=clock, rand=lambda: 0.5)
    assert second == pytest.approx(40.0)
    clock.advance(second)
    assert await worker.deliver(tx, sender, job, RULES, clock=clock, rand=lambda: 0.5) is None

    assert await attempts(session_factory, job) == [(1, 500, False, None), (2, 503, False, None), (3, 200, True, None)]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert [verified(secret, receiver, n)["data"]["amount"] for n in range(3)] == [700] * 3
    assert (await delivery(session_factory, job)).status == "succeeded"
    async with session_factory() as session:
        endpoint = (await session.scalars(select(WebhookEndpoint))).one()
    assert (endpoint.consecutive_failures, endpoint.failing_since, endpoint.enabled) == (0, None, True)


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    user_id, _ = await subscribed(session_factory, receiver)
    job = await credited(session_factory, user_id)
    receiver.plan(302)

    assert await worker.deliver(transactions(session_factory), sender, job, RULES) is not None

    assert [r.path for r in receiver.requests] == ["/hook"]  # /redirected was never asked for
    assert await attempts(session_factory, job) == [(1, 302, False, "redirect_not_followed")]
    assert (await delivery(session_factory, job)).status == "pending"


async def test_an_unreachable_receiver_is_a_failure_with_its_error(
    session_factory: Sessions, sender: WebhookSender
) -> None:
    user_id = await pro_user(session_factory)
    with receiving() as gone:
        url = gone.url()  # a port nobody listens on once it stopped
    await endpoint_for(session_factory, user_id, url, EventType.WALLET_CREDITED)
    job = await credited(session_factory, user_id)

    assert await worker.deliver(transactions(session_factory), sender, job, RULES) is not None

    [(number, status, succeeded, error)] = await attempts(session_factory, job)
    assert (number, status, succeeded, error) == (1, None, False, "ConnectError")


async def test_a_slow_receiver_times_out(session_factory: Sessions, receiver: Receiver) -> None:
    user_id, _ = await subscribed(session_factory, receiver)
    job = await credited(session_factory, user_id)
    receiver.delay = 1.0
    async with build_client(OPEN_SETTINGS) as client:
        impatient = WebhookSender(client, url_policy(OPEN_SETTINGS), timeout=0.3)
        assert await worker.deliver(transactions(session_factory), impatient, job, RULES) is not None
    [(_, status, _, error)] = await attempts(session_factory, job)
    assert (status, error) == (None, "timeout")


async def test_replay_sends_the_same_webhook_id_and_body(
    client: AsyncClient, session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    headers, user_id = await customer(client, session_factory)
    endpoint_id, secret = await endpoint_for(session_factory, user_id, receiver.url(), EventType.WALLET_CREDITED)
    job = await credited(session_factory, user_id)
    tx = transactions(session_factory)
    await worker.deliver(tx, sender, job, RULES)

    replayed = await client.post(f"/v1/webhook-deliveries/{job.delivery_id}/replay", headers=headers)

    assert replayed.status_code == 202, replayed.text
    assert replayed.json() == {
        "id": str(job.delivery_id),
        "webhook_id": f"msg_{job.delivery_id.hex}",
        "status": "pending",
    }
    assert await delivery_jobs(session_factory) == [{"delivery_id": str(job.delivery_id)}] * 2
    await worker.deliver(tx, sender, job, RULES)
    first, again = receiver.requests
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == f"msg_{job.delivery_id.hex}"
    assert again.body == first.body
    assert verified(secret, receiver, 1)["type"] == "wallet.credited"
    listed = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=headers)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["id"], item["status"], item["event_type"], item["webhook_id"]) == (
        str(job.delivery_id), "succeeded", "wallet.credited", f"msg_{job.delivery_id.hex}"
    )  # fmt: skip
    assert [(a["number"], a["status_code"], a["succeeded"]) for a in item["attempts"]] == [
        (1, 200, True),
        (2, 200, True),
    ]
    assert all(isinstance(a["duration_ms"], int) and a["started_at"] for a in item["attempts"])
    assert item["attempts"][0]["response_body"] == "answer 200"


async def test_a_delivery_in_flight_or_to_a_disabled_endpoint_is_not_replayed(
    client: AsyncClient, session_factory: Sessions, receiver: Receiver
) -> None:
    headers, user_id = await customer(client, session_factory)
    endpoint_id, _ = await endpoint_for(session_factory, user_id, receiver.url(), EventType.WALLET_CREDITED)
    job = await credited(session_factory, user_id)
    async with session_factory() as session:
        lease = utcnow() + timedelta(minutes=1)
        await session.execute(update(WebhookDelivery).values(lease_until=lease))
        await session.commit()
    in_flight = await client.post(f"/v1/webhook-deliveries/{job.delivery_id}/replay", headers=headers)
    async with session_factory() as session:
        await session.execute(update(WebhookDelivery).values(lease_until=None))
        await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(enabled=False))
        await session.commit()
    disabled = await client.post(f"/v1/webhook-deliveries/{job.delivery_id}/replay", headers=headers)

    assert (in_flight.status_code, in_flight.json()["code"]) == (409, "webhook_delivery_in_progress")
    assert (disabled.status_code, disabled.json()["code"]) == (409, "webhook_endpoint_disabled")
    assert len(await delivery_jobs(session_factory)) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]"])
async def test_internal_addresses_are_refused_at_delivery(session_factory: Sessions, host: str) -> None:
    """Endpoints made while internal addresses were allowed (or rebound since): a strict worker sends nothing."""
    user_id = await pro_user(session_factory)
    await endpoint_for(session_factory, user_id, f"http://{host}:9/hook", EventType.WALLET_CREDITED)
    job = await credited(session_factory, user_id)
    async with build_client(make_settings(WEBHOOK_ALLOW_HTTP="true")) as client:
        strict = WebhookSender(client, url_policy(make_settings(WEBHOOK_ALLOW_HTTP="true")), timeout=3)
        assert await worker.deliver(transactions(session_factory), strict, job, RULES) is not None
    [(_, status, succeeded, error)] = await attempts(session_factory, job)
    assert (status, succeeded, error) == (None, False, "webhook_url_forbidden")


async def test_a_name_rebound_to_loopback_is_refused_at_delivery(session_factory: Sessions, receiver: Receiver) -> None:
    """Public when the endpoint was created, loopback when the delivery resolves it: nothing is sent."""
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.216.34"] if len(calls) == 1 else ["127.0.0.1"]

    user_id = await pro_user(session_factory)
    url, policy = f"http://partner.invalid:{receiver.port}/hook", UrlPolicy(allow_http=True)
    await endpoint_for(session_factory, user_id, url, EventType.WALLET_CREDITED, policy=policy, resolver=rebinding)
    job = await credited(session_factory, user_id)
    settings = make_settings(WEBHOOK_ALLOW_HTTP="true")
    async with build_client(settings, resolver=rebinding) as client:
        strict = WebhookSender(client, url_policy(settings), timeout=3)
        assert await worker.deliver(transactions(session_factory), strict, job, RULES) is not None
    assert receiver.requests == []
    assert calls == ["partner.invalid", "partner.invalid"]  # once at creation, once by the delivery's connection
    assert (await attempts(session_factory, job))[0][3] == "webhook_url_forbidden"


async def test_a_long_run_of_failures_disables_the_endpoint_and_mails_its_owner(
    session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    user_id, _ = await subscribed(session_factory, receiver, "owner@example.com")
    rules = DeliveryRules(
        retry=RetryPolicy(base_delay=60, max_delay=3600, window=86_400, jitter=0),
        lease=timedelta(seconds=60),
        disable_after_failures=3,
        disable_after=timedelta(minutes=2),
        secret_key=OPEN_SETTINGS.secret_key,
        public_base_url="https://app.namaskah.example",
    )
    first, second = await credited(session_factory, user_id), await credited(session_factory, user_id)
    receiver.plan(*[500] * 10)
    clock, tx = Clock(), transactions(session_factory)

    await worker.deliver(tx, sender, first, rules, clock=clock)  # failure 1
    await worker.deliver(tx, sender, second, rules, clock=clock)  # failure 2
    clock.advance(60)
    await worker.deliver(tx, sender, first, rules, clock=clock)  # failure 3, but failing for 1 minute only
    assert await endpoint_state(session_factory) == (True, 3)
    clock.advance(60)
    assert await worker.deliver(tx, sender, second, rules, clock=clock) is not None  # 4 failures over 2 minutes

    assert await endpoint_state(session_factory) == (False, 4)
    async with session_factory() as session:
        mails = (await session.scalars(select(OutboxMessage).where(OutboxMessage.actor == "mail.send"))).all()
    [mail] = [SendMail.decode(row.payload).open(rules.secret_key) for row in mails]
    assert mail.to == "owner@example.com"
    assert receiver.url() in mail.text
    assert "https://app.namaskah.example/webhooks/" in mail.text
    # Its deliveries stop: the first one's retry finds the endpoint disabled and gives up, sending nothing.
    clock.advance(3600)
    requests = len(receiver.requests)
    assert await worker.deliver(tx, sender, first, rules, clock=clock) is None
    assert len(receiver.requests) == requests
    assert (await delivery(session_factory, first)).status == "failed"
    # And new events are not recorded for it.
    before = await counts(session_factory)
    await credited_without_job(session_factory, user_id)
    assert await counts(session_factory) == before


async def endpoint_state(sessions: Sessions) -> tuple[bool, int]:
    async with sessions() as session:
        endpoint = (await session.scalars(select(WebhookEndpoint).execution_options(populate_existing=True))).one()
        return endpoint.enabled, endpoint.consecutive_failures


async def credited_without_job(sessions: Sessions, user_id: uuid.UUID) -> None:
    async with sessions() as session:
        reference = f"grant:{uuid.uuid4()}"
        await WalletService(session=session).credit(user_id, 1, kind=EntryKind.GRANT, reference=reference)
        await session.commit()


async def test_enabling_again_resets_the_failures(client: AsyncClient, session_factory: Sessions) -> None:
    headers, _ = await customer(client, session_factory)
    created = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://93.184.216.34/hook", "events": ["wallet.credited"]},
        headers=headers,
    )
    endpoint_id = created.json()["id"]
    async with session_factory() as session:
        await session.execute(
            update(WebhookEndpoint).values(enabled=False, disabled_at=utcnow(), consecutive_failures=20)
        )
        await session.commit()

    enabled = await client.post(f"/v1/webhook-endpoints/{endpoint_id}/enable", headers=headers)

    assert (enabled.status_code, enabled.json()["enabled"], enabled.json()["disabled_at"]) == (200, True, None)
    assert await endpoint_state(session_factory) == (True, 0)


async def test_retries_give_up_at_the_end_of_the_window(
    session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    user_id, _ = await subscribed(session_factory, receiver)
    job = await credited(session_factory, user_id)
    rules = DeliveryRules.from_settings(make_settings(WEBHOOK_RETRY_WINDOW="100", WEBHOOK_RETRY_BASE_DELAY="20"))
    receiver.plan(*[500] * 10)
    clock, tx = Clock(), transactions(session_factory)

    waits = []
    while (wait := await worker.deliver(tx, sender, job, rules, clock=clock, rand=lambda: 0.5)) is not None:
        waits.append(wait)
        clock.advance(wait)

    # The window counts from the event (a moment before this clock started); the last wait is cut to end there.
    assert waits == [pytest.approx(20), pytest.approx(40), pytest.approx(40, abs=1)]
    given_up = await delivery(session_factory, job)
    assert (given_up.status, given_up.attempts, given_up.last_status_code) == ("failed", 4, 500)
    assert len(receiver.requests) == 4


async def test_a_deleted_endpoint_sends_nothing(
    client: AsyncClient, session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    headers, user_id = await customer(client, session_factory)
    endpoint_id, _ = await endpoint_for(session_factory, user_id, receiver.url(), EventType.WALLET_CREDITED)
    job = await credited(session_factory, user_id)
    assert (await client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=headers)).status_code == 204

    assert await worker.deliver(transactions(session_factory), sender, job, RULES) is None
    assert receiver.requests == []


async def test_the_sweep_requests_overdue_deliveries_once(session_factory: Sessions, receiver: Receiver) -> None:
    user_id, _ = await subscribed(session_factory, receiver)
    overdue, fresh, leased = [await credited(session_factory, user_id) for _ in range(3)]
    now = utcnow()
    async with session_factory() as session:
        await session.execute(update(WebhookDelivery).values(next_attempt_at=now - timedelta(minutes=10)))
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == fresh.delivery_id).values(next_attempt_at=now)
        )
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == leased.delivery_id)
            .values(lease_until=now + timedelta(minutes=1))
        )
        await session.commit()
    broker = StubBroker()
    relay = OutboxRelay(session_factory, broker)

    assert await sweep_due_deliveries(relay, now=now) == 1
    assert await sweep_due_deliveries(relay, now=now + timedelta(seconds=30)) == 0  # not overdue again so soon

    assert (await delivery_jobs(session_factory))[3:] == [{"delivery_id": str(overdue.delivery_id)}]
    published = [json.loads(raw)["args"][0] for raw in broker.queues["webhooks"].queue]
    assert published == [{"delivery_id": str(overdue.delivery_id)}]  # through the outbox, after commit


async def test_duplicate_jobs_racing_send_once(isolated_database: str, receiver: Receiver) -> None:
    """Two workers got the same delivery (fast path and sweep): real concurrent sessions, one request."""
    engine = create_async_engine(isolated_database)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        user_id, secret = await subscribed(sessions, receiver)
        job = await credited(sessions, user_id)
        receiver.delay = 0.3  # both claims happen while the first attempt is in flight
        async with build_client(OPEN_SETTINGS) as client:
            sender = WebhookSender(client, url_policy(OPEN_SETTINGS), timeout=3)
            results = await asyncio.gather(
                *(worker.deliver(transactions(sessions), sender, job, RULES) for _ in range(5))
            )
        # The four that found it held come back when the lease ends, in case its holder died; then they find it
        # sent and stop.
        assert results.count(None) == 1
        lease = RULES.lease.total_seconds()
        assert all(lease - 5 < delay <= lease for delay in results if delay is not None)
        later = Clock()
        later.advance(lease + 1)
        again = [await worker.deliver(transactions(sessions), sender, job, RULES, clock=later) for _ in range(4)]
        assert again == [None] * 4
        assert len(receiver.requests) == 1
        verified(secret, receiver)
        assert await attempts(sessions, job) == [(1, 200, True, None)]
    finally:
        await engine.dispose()


async def test_an_attempt_cut_off_mid_flight_is_sent_again_once_its_lease_ends(
    session_factory: Sessions, sender: WebhookSender, receiver: Receiver
) -> None:
    """The worker died between the claim and the answer: the redelivered job waits out the lease, then sends with
    the same webhook-id, and the lost attempt shows in the history."""
    user_id, secret = await subscribed(session_factory, receiver)
    job = await credited(session_factory, user_id)
    clock = Clock()
    async with session_factory() as session:  # the dead worker's claim, never finished
        assert await WebhookAttemptService(session=session, rules=RULES).claim(job.delivery_id, clock()) is not None
        await session.commit()
    clock.advance(2)
    wait = await worker.deliver(transactions(session_factory), sender, job, RULES, clock=clock)
    assert wait == pytest.approx(RULES.lease.total_seconds() - 2)
    assert receiver.requests == []
    clock.advance(wait)
    assert await worker.deliver(transactions(session_factory), sender, job, RULES, clock=clock) is None

    assert len(receiver.requests) == 1
    assert verified(secret, receiver)["type"] == "wallet.credited"
    assert receiver.requests[0].headers["webhook-id"] == f"msg_{job.delivery_id.hex}"
    assert await attempts(session_factory, job) == [(1, None, False, "interrupted"), (2, 200, True, None)]
    done = await delivery(session_factory, job)
    assert (done.status, done.attempts, done.lease_until) == ("succeeded", 2, None)
