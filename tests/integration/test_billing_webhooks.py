"""POST /v1/webhooks/paystack and its job: signatures and sources refused with nothing stored, one event stored once
under 100 concurrent deliveries and credited once, refunds and disputes moving money with the ledger balanced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.domain.billing import worker
from namaskah.domain.billing.events import Envelope, event_key, networks, sign, source_address
from namaskah.domain.billing.jobs import ProcessPaystackEvent
from namaskah.domain.billing.models import BillingFlag, EventStatus, PaystackEvent, SandboxTransaction, Topup
from namaskah.domain.wallet.models import SYSTEM_ACCOUNT_IDS, EntryKind, LedgerEntry, SystemAccount
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.settings import Settings
from tests.conftest import serve_in_loop
from tests.integration.test_billing_topups import (
    AMOUNT,
    balance,
    committed,  # noqa: F401 - a fixture, used by name
    count,
    credits_of,
    paystack_app,
    start,
)
from tests.integration.test_verifications import customer, transactions
from tests.integration.test_wallet_ledger import assert_ledger_balances
from tests.support.databases import make_settings
from tests.support.fake_paystack import (
    SECRET_KEY,
    FakePaystack,
    charge_success,
    dispute,
    refund_processed,
    signed,
)

Sessions = async_sessionmaker[AsyncSession]
WEBHOOK = "/v1/webhooks/paystack"
SETTINGS = make_settings(PAYSTACK_SECRET_KEY=SECRET_KEY)


@pytest.fixture
def fake() -> FakePaystack:
    return FakePaystack()


@pytest.fixture
async def client(
    session_factory: Sessions, fake: FakePaystack, stub_broker: StubBroker
) -> AsyncIterator[httpx.AsyncClient]:
    app = paystack_app(session_factory, fake, stub_broker)
    async with serve_in_loop(app) as test_client:
        yield test_client
    await app.state.paystack.aclose()


async def deliver(client: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    body, headers = signed(event)
    return await client.post(WEBHOOK, content=body, headers=headers)


async def run_jobs(sessions: Sessions, settings: Settings = SETTINGS) -> list[EventStatus | None]:
    """What the worker does with every event job the receiver requested."""
    async with sessions() as session:
        payloads = (
            await session.scalars(
                select(OutboxMessage.payload).where(OutboxMessage.actor == ProcessPaystackEvent.actor_name)
            )
        ).all()
    return [await worker.process(transactions(sessions), ProcessPaystackEvent.decode(p), settings) for p in payloads]


async def paid_top_up(
    client: httpx.AsyncClient, sessions: Sessions, fake: FakePaystack, email: str = "ada@example.com"
) -> tuple[dict[str, str], uuid.UUID, SandboxTransaction]:
    """A customer whose top-up Paystack reported paid through the webhook, credited."""
    headers, user_id = await customer(client, sessions, email)
    tx = fake.pay((await start(client, headers))["reference"])
    assert (await deliver(client, charge_success(tx))).json() == {"received": True, "duplicate": False}
    assert await run_jobs(sessions) == [EventStatus.PROCESSED]
    assert await balance(sessions, user_id) == AMOUNT
    return headers, user_id, tx


async def nothing_stored(sessions: Sessions) -> None:
    assert await count(sessions, PaystackEvent) == 0
    assert await count(sessions, OutboxMessage, OutboxMessage.actor == ProcessPaystackEvent.actor_name) == 0


# --- the receiver -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-paystack-signature": ""},
        {"x-paystack-signature": "0" * 128},
        {"x-paystack-signature": "not hex at all"},
    ],
)
async def test_a_missing_or_wrong_signature_is_401_and_stores_nothing(
    client: httpx.AsyncClient, session_factory: Sessions, headers: dict[str, str]
) -> None:
    body, _ = signed({"event": "charge.success", "data": {"id": 1, "reference": "tu-x"}})

    response = await client.post(WEBHOOK, content=body, headers=headers)

    assert (response.status_code, response.json()["code"]) == (401, "bad_signature")
    await nothing_stored(session_factory)


async def test_a_body_signed_with_another_key_or_changed_after_signing_is_401(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    event = {"event": "charge.success", "data": {"id": 1, "reference": "tu-x", "amount": 100}}
    body, other_key = signed(event, secret_key="sk_test_someone_else")
    _, ours = signed(event)
    tampered = body.replace(b'"amount":100', b'"amount":999')

    assert (await client.post(WEBHOOK, content=body, headers=other_key)).status_code == 401
    assert (await client.post(WEBHOOK, content=tampered, headers=ours)).status_code == 401
    await nothing_stored(session_factory)


async def test_a_signed_body_that_is_no_event_is_400_and_stores_nothing(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    for body in (b"not json", b'{"event": "charge.success"}', b'{"data": {}}', b"[]"):
        response = await client.post(WEBHOOK, content=body, headers={"x-paystack-signature": sign(body, SECRET_KEY)})
        assert (response.status_code, response.json()["code"]) == (400, "malformed_event")
    await nothing_stored(session_factory)


async def test_one_event_is_stored_once_and_a_redelivery_answers_duplicate(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    event = {"event": "charge.success", "data": {"id": 42, "reference": "tu-x", "status": "success"}}

    first, again = await deliver(client, event), await deliver(client, event)

    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    async with session_factory() as session:
        stored = (await session.scalars(select(PaystackEvent))).one()
    assert (stored.event_key, stored.event_type, stored.status) == ("charge.success:id:42", "charge.success", "pending")
    assert stored.payload == event
    assert await count(session_factory, OutboxMessage, OutboxMessage.actor == ProcessPaystackEvent.actor_name) == 1


async def test_unknown_events_are_stored_acknowledged_and_ignored(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    with_id = {"event": "transfer.success", "data": {"id": 9, "amount": 1}}
    without = {"event": "customeridentification.failed", "data": {"email": "a@b.c"}}

    assert (await deliver(client, with_id)).status_code == 200
    assert (await deliver(client, without)).status_code == 200
    assert (await deliver(client, without)).json()["duplicate"] is True  # keyed by the body's hash

    assert await run_jobs(session_factory) == [EventStatus.IGNORED, EventStatus.IGNORED]
    async with session_factory() as session:
        keys = set((await session.scalars(select(PaystackEvent.event_key))).all())
    assert "transfer.success:id:9" in keys
    assert any(k.startswith("customeridentification.failed:sha256:") for k in keys)


async def test_the_source_allow_list_honours_forwarded_for_only_from_trusted_proxies(
    session_factory: Sessions, fake: FakePaystack, stub_broker: StubBroker
) -> None:
    event = {"event": "charge.success", "data": {"id": 7, "reference": "tu-x"}}
    body, headers = signed(event)
    allow = {"PAYSTACK_WEBHOOK_IPS": "52.31.139.75,52.49.173.169,52.214.14.220"}
    # The test client connects from 127.0.0.1.
    for trusted, forwarded, expected in (
        ("", None, 403),
        ("", "52.31.139.75", 403),  # anyone may write the header: without a trusted proxy it is not read
        ("127.0.0.1/32", "52.31.139.75", 200),
        ("127.0.0.1/32", "52.31.139.75, 10.0.0.8", 403),  # the hop our proxy saw is 10.0.0.8, not Paystack
        ("127.0.0.1/32,10.0.0.0/8", "6.6.6.6, 52.49.173.169, 10.0.0.8", 200),
    ):
        app = paystack_app(session_factory, fake, stub_broker, PAYSTACK_TRUSTED_PROXIES=trusted, **allow)
        async with serve_in_loop(app) as client:
            extra = {"x-forwarded-for": forwarded} if forwarded else {}
            response = await client.post(WEBHOOK, content=body, headers=headers | extra)
        await app.state.paystack.aclose()
        assert response.status_code == expected, (trusted, forwarded, response.text)
        if expected == 403:
            assert response.json()["code"] == "source_not_allowed"
    async with session_factory() as session:
        sources = (await session.scalars(select(PaystackEvent.source_ip))).all()
    assert sources == ["52.31.139.75"]  # stored once, by the first accepted delivery


# --- charge.success ---------------------------------------------------------------------------------------


async def test_a_charge_success_credits_once_even_when_its_job_runs_again(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    _, user_id, tx = await paid_top_up(client, session_factory, fake)

    assert await run_jobs(session_factory) == [None]  # settled already
    assert (await deliver(client, charge_success(tx))).json()["duplicate"] is True
    assert await balance(session_factory, user_id) == AMOUNT
    assert await credits_of(session_factory, tx.reference) == 1


async def test_a_webhook_mismatch_credits_nothing_and_is_flagged(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    headers, user_id = await customer(client, session_factory)
    tx = fake.pay((await start(client, headers))["reference"], amount=AMOUNT // 2)

    await deliver(client, charge_success(tx))

    assert await run_jobs(session_factory) == [EventStatus.FLAGGED]
    assert await balance(session_factory, user_id) == 0
    assert await count(session_factory, BillingFlag, BillingFlag.kind == "mismatch") == 1
    # Verify agrees with the webhook and changes nothing now.
    assert (await client.get(f"/v1/billing/topups/{tx.reference}", headers=headers)).json()["status"] == "mismatch"
    assert await credits_of(session_factory, tx.reference) == 0


async def test_a_charge_for_a_reference_that_is_not_ours_is_ignored(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    event = {
        "event": "charge.success",
        "data": {"id": 5, "status": "success", "reference": "shop-123", "amount": 1, "currency": "NGN"},
    }
    await deliver(client, event)
    assert await run_jobs(session_factory) == [EventStatus.IGNORED]


# --- refunds ----------------------------------------------------------------------------------------------


async def test_a_refund_takes_the_credits_back_with_the_amount_as_a_string(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    _, user_id, tx = await paid_top_up(client, session_factory, fake)

    await deliver(client, refund_processed(tx.reference, 200_000, as_string=True))
    await deliver(client, refund_processed(tx.reference, 200_000, as_string=True))  # redelivered

    assert await run_jobs(session_factory) == [None, EventStatus.PROCESSED]
    assert await balance(session_factory, user_id) == AMOUNT - 200_000
    async with session_factory() as session:
        row = await session.scalar(select(Topup).where(Topup.reference == tx.reference))
        assert row is not None
        assert row.refunded_amount == 200_000
        await assert_ledger_balances(session)
        clearing = await session.scalar(
            select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.account_id == SYSTEM_ACCOUNT_IDS[SystemAccount.PAYSTACK_CLEARING]
            )
        )
    assert clearing == -(AMOUNT - 200_000)  # what came in through Paystack, less what went back out
    assert await count(session_factory, BillingFlag) == 0


async def test_a_refund_larger_than_the_balance_takes_what_is_there_and_flags_the_rest(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    _, user_id, tx = await paid_top_up(client, session_factory, fake)
    async with session_factory() as session:  # the customer spent most of it
        await WalletService(session=session).debit(user_id, 450_000, kind=EntryKind.PURCHASE, reference="spent")
        await session.commit()

    await deliver(client, refund_processed(tx.reference, AMOUNT, as_string=False))

    assert await run_jobs(session_factory) == [None, EventStatus.FLAGGED]
    assert await balance(session_factory, user_id) == 0
    async with session_factory() as session:
        flag = (await session.scalars(select(BillingFlag))).one()
        await assert_ledger_balances(session)
    assert (flag.kind, flag.amount, flag.reference) == ("refund_shortfall", 450_000, tx.reference)


async def test_a_refund_with_an_unreadable_amount_is_flagged_and_moves_nothing(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    _, user_id, tx = await paid_top_up(client, session_factory, fake)
    event = refund_processed(tx.reference, 1)
    event["data"]["amount"] = "12.50"

    await deliver(client, event)

    assert await run_jobs(session_factory) == [None, EventStatus.FLAGGED]
    assert await balance(session_factory, user_id) == AMOUNT
    assert await count(session_factory, BillingFlag, BillingFlag.kind == "bad_event") == 1


# --- disputes ---------------------------------------------------------------------------------------------


async def disputes_total(sessions: Sessions) -> int:
    async with sessions() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == SYSTEM_ACCOUNT_IDS[SystemAccount.DISPUTES]
            )
        )
    return int(total or 0)


@pytest.mark.parametrize(("resolution", "released"), [("declined", True), ("merchant-accepted", False)])
async def test_a_dispute_freezes_the_credits_and_its_resolution_releases_or_keeps_them(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack, resolution: str, released: bool
) -> None:
    _, user_id, tx = await paid_top_up(client, session_factory, fake)

    await deliver(client, dispute("charge.dispute.create", tx))
    await deliver(client, dispute("charge.dispute.remind", tx))
    assert await run_jobs(session_factory) == [None, EventStatus.PROCESSED, EventStatus.IGNORED]
    assert await balance(session_factory, user_id) == 0
    assert await disputes_total(session_factory) == AMOUNT
    assert await count(session_factory, BillingFlag, BillingFlag.kind == "dispute") == 1

    await deliver(client, dispute("charge.dispute.resolve", tx, status="resolved", resolution=resolution))
    await run_jobs(session_factory)

    assert await balance(session_factory, user_id) == (AMOUNT if released else 0)
    assert await disputes_total(session_factory) == (0 if released else AMOUNT)
    async with session_factory() as session:
        await assert_ledger_balances(session)
        row = await session.scalar(select(Topup).where(Topup.reference == tx.reference))
    assert row is not None
    assert row.frozen_amount == (0 if released else AMOUNT)
    assert await count(session_factory, BillingFlag, BillingFlag.kind == "dispute_lost") == (0 if released else 1)


async def test_a_dispute_on_a_spent_top_up_freezes_what_is_left_and_flags_the_shortfall(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    _, user_id, tx = await paid_top_up(client, session_factory, fake)
    async with session_factory() as session:
        await WalletService(session=session).debit(user_id, 300_000, kind=EntryKind.PURCHASE, reference="spent")
        await session.commit()

    await deliver(client, dispute("charge.dispute.create", tx))

    assert await run_jobs(session_factory) == [None, EventStatus.FLAGGED]
    assert await balance(session_factory, user_id) == 0
    assert await disputes_total(session_factory) == 200_000
    async with session_factory() as session:
        kinds = {(f.kind, f.amount) for f in (await session.scalars(select(BillingFlag))).all()}
        await assert_ledger_balances(session)
    assert kinds == {("dispute", 200_000), ("dispute_shortfall", 300_000)}


# --- one event, 100 concurrent deliveries, real commits -----------------------------------------------------


async def test_one_event_delivered_100_times_concurrently_is_stored_once_and_credits_once(
    committed: Sessions,  # noqa: F811 - the fixture imported above
    fake: FakePaystack,
) -> None:
    app = paystack_app(committed, fake, StubBroker())
    async with serve_in_loop(app) as client:
        headers, user_id = await customer(client, committed)
        tx = fake.pay((await start(client, headers))["reference"])
        body, signature = signed(charge_success(tx))

        answers = await asyncio.gather(*(client.post(WEBHOOK, content=body, headers=signature) for _ in range(100)))

        assert {r.status_code for r in answers} == {200}
        assert sum(not r.json()["duplicate"] for r in answers) == 1
        assert await count(committed, PaystackEvent) == 1
        assert await count(committed, OutboxMessage, OutboxMessage.actor == ProcessPaystackEvent.actor_name) == 1
        # The one job, delivered several times at once (at-least-once delivery), credits once.
        async with committed() as session:
            event_id = await session.scalar(select(PaystackEvent.id))
        job = ProcessPaystackEvent(event_id=event_id)
        outcomes = await asyncio.gather(*(worker.process(transactions(committed), job, SETTINGS) for _ in range(5)))
    await app.state.paystack.aclose()

    assert outcomes.count(EventStatus.PROCESSED) == 1
    assert outcomes.count(None) == 4
    assert await balance(committed, user_id) == AMOUNT
    assert await credits_of(committed, tx.reference) == 1
    async with committed() as session:
        await assert_ledger_balances(session)


# --- the pure parts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("52.31.139.75", None, "", "52.31.139.75"),
        ("10.0.0.2", "52.31.139.75", "", "10.0.0.2"),  # an untrusted peer's header is ignored
        ("10.0.0.2", "52.31.139.75", "10.0.0.0/8", "52.31.139.75"),
        ("10.0.0.2", "1.1.1.1, 52.31.139.75, 10.0.0.9", "10.0.0.0/8", "52.31.139.75"),  # right-most untrusted
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", "10.0.0.0/8", "10.0.0.7"),  # only proxies: the farthest one
        ("::1", "2001:db8::5", "::1/128", "2001:db8::5"),
    ],
)
def test_the_source_address(peer: str, forwarded: str | None, trusted: str, expected: str) -> None:
    assert source_address(peer, forwarded, networks(trusted)) == expected


@pytest.mark.parametrize(("value", "expected"), [(10_000, 10_000), ("10000", 10_000), (" 42 ", 42), (0, 0)])
def test_amounts_as_numbers_or_strings(value: int | str, expected: int) -> None:
    assert worker.minor_units(value) == expected


@pytest.mark.parametrize("value", ["12.50", "-5", "1e3", "", -1, True, "9" * 19])
def test_amounts_that_are_not_whole_minor_units_are_refused(value: int | str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message names the value
        worker.minor_units(value)


def test_event_keys_name_the_subject_not_the_delivery() -> None:
    charge = Envelope(event="charge.success", data={"id": 302961, "reference": "tu-a", "log": {"time_spent": 9}})
    retried = Envelope(event="charge.success", data={"id": 302961, "reference": "tu-a", "log": {"time_spent": 12}})
    refund = Envelope(event="refund.processed", data={"transaction_reference": "tu-a", "refund_reference": "rf_1"})
    assert event_key(charge, b"one body") == event_key(retried, b"another body") == "charge.success:id:302961"
    assert event_key(refund, b"x") == "refund.processed:ref:rf_1"
    assert event_key(Envelope(event="x.y", data={}), b"body").startswith("x.y:sha256:")
    assert len(event_key(Envelope(event="x.y", data={"id": "9" * 500}), b"")) <= 200


async def test_an_odd_forwarded_for_from_a_trusted_proxy_is_stored_as_no_address(
    session_factory: Sessions, fake: FakePaystack, stub_broker: StubBroker
) -> None:
    app = paystack_app(session_factory, fake, stub_broker, PAYSTACK_TRUSTED_PROXIES="127.0.0.1")
    body, headers = signed({"event": "charge.success", "data": {"id": 8}})
    async with serve_in_loop(app) as client:
        response = await client.post(WEBHOOK, content=body, headers=headers | {"x-forwarded-for": "x" * 300})
    await app.state.paystack.aclose()
    assert response.status_code == 200
    async with session_factory() as session:
        assert (await session.scalars(select(PaystackEvent.source_ip))).all() == [None]
