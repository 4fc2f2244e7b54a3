"""Top-ups through the API against a fake Paystack held to its OpenAPI document: limits, the state a failed initialize
leaves, owner-only reads, a verify that credits once, mismatches flagged, and verify racing the webhook (one credit,
one invoice). Tax and invoices of top-ups: test_topup_invoices."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from namaskah.app import create_app
from namaskah.db.engine import create_session_factory
from namaskah.domain.billing import worker
from namaskah.domain.billing.jobs import ProcessPaystackEvent
from namaskah.domain.billing.models import BillingFlag, PaystackEvent, Topup
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.domain.invoices.models import Invoice
from namaskah.domain.wallet.models import LedgerTransaction
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.outbox.models import OutboxMessage
from tests.conftest import serve_in_loop
from tests.integration.test_admin import operator_headers
from tests.integration.test_verifications import customer, transactions
from tests.integration.test_wallet_ledger import assert_ledger_balances
from tests.support.databases import make_settings
from tests.support.fake_paystack import SECRET_KEY, FakePaystack, charge_success, client_for, signed

Sessions = async_sessionmaker[AsyncSession]
AMOUNT = 500_000  # NGN 5,000


@pytest.fixture
def fake() -> FakePaystack:
    return FakePaystack()


def paystack_app(sessions: Sessions, fake: FakePaystack, broker: StubBroker, **settings: str) -> Litestar:
    """The app as in production against "Paystack" (the fake), not the sandbox."""
    app = create_app(make_settings(PAYSTACK_SECRET_KEY=SECRET_KEY, **settings), session_factory=sessions, broker=broker)
    app.state.paystack = client_for(fake)
    return app


@pytest.fixture
async def client(
    session_factory: Sessions, fake: FakePaystack, stub_broker: StubBroker
) -> AsyncIterator[httpx.AsyncClient]:
    app = paystack_app(session_factory, fake, stub_broker)
    async with serve_in_loop(app) as test_client:
        yield test_client
    await app.state.paystack.aclose()
    assert fake.violations == []


async def start(client: httpx.AsyncClient, headers: dict[str, str], amount: int = AMOUNT) -> dict:
    response = await client.post("/v1/billing/topups", json={"amount": amount, "currency": "NGN"}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def count(sessions: Sessions, model: type[object], *where: object) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


async def balance(sessions: Sessions, user_id: uuid.UUID) -> int:
    async with sessions() as session:
        return await WalletService(session=session).balance_of(user_id)


async def credits_of(sessions: Sessions, reference: str) -> int:
    return await count(sessions, LedgerTransaction, LedgerTransaction.reference == f"paystack:{reference}")


async def test_a_top_up_is_initialised_with_its_reference_and_the_user_in_metadata(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    headers, user_id = await customer(client, session_factory)

    created = await start(client, headers)

    reference = created["reference"]
    assert reference.startswith("tu-")
    assert len(reference) == 35
    assert created["status"] == "pending"
    assert created["authorization_url"].startswith("https://checkout.paystack.com/")
    assert (created["amount"], created["currency"]) == (AMOUNT, "NGN")
    sent = fake.transactions[reference]
    assert (sent.amount, sent.currency, sent.email) == (AMOUNT, "NGN", "ada@example.com")
    assert sent.metadata_ is not None
    assert sent.metadata_["user_id"] == str(user_id)
    async with session_factory() as session:
        row = await session.scalar(select(Topup).where(Topup.reference == reference))
    assert row is not None
    assert (row.user_id, row.status, row.access_code) == (user_id, "pending", sent.access_code)
    assert await balance(session_factory, user_id) == 0  # nothing is credited before Paystack says so


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 9_999, "currency": "NGN"}, 422, "amount_out_of_range"),
        ({"amount": 100_000_001, "currency": "NGN"}, 422, "amount_out_of_range"),
        ({"amount": AMOUNT, "currency": "USD"}, 422, "unsupported_currency"),
        ({"amount": -5, "currency": "NGN"}, 422, "validation_failed"),
        ({"amount": 50.5, "currency": "NGN"}, 422, "validation_failed"),
        ({"amount": "five thousand", "currency": "NGN"}, 422, "validation_failed"),
        ({"amount": AMOUNT, "currency": "NAIRA"}, 422, "validation_failed"),
        ({"amount": AMOUNT}, 422, "validation_failed"),
    ],
)
async def test_bad_amounts_and_currencies_are_refused_with_nothing_written(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack, body: dict, status: int, code: str
) -> None:
    headers, _ = await customer(client, session_factory)

    response = await client.post("/v1/billing/topups", json=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert await count(session_factory, Topup) == 0
    assert fake.transactions == {}


async def test_paystack_down_answers_503_and_leaves_the_top_up_failed(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    headers, user_id = await customer(client, session_factory)
    fake.fail_next("POST", "/transaction/initialize", 503, times=10)

    response = await client.post("/v1/billing/topups", json={"amount": AMOUNT, "currency": "NGN"}, headers=headers)

    assert response.status_code == 503
    assert response.json()["code"] == "paystack_unavailable"
    async with session_factory() as session:
        row = (await session.scalars(select(Topup))).one()
    assert row.status == "failed"
    assert row.failure is not None
    assert row.failure.startswith("paystack_unavailable")
    assert row.authorization_url is None
    assert await balance(session_factory, user_id) == 0


async def test_a_lost_initialize_answer_is_verified_not_initialised_twice(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    headers, _ = await customer(client, session_factory)
    fake.fail_next("POST", "/transaction/initialize", error=httpx.ReadTimeout, process=True)

    response = await client.post("/v1/billing/topups", json={"amount": AMOUNT, "currency": "NGN"}, headers=headers)

    assert response.status_code == 503
    assert len(fake.transactions) == 1  # one transaction at Paystack
    [reference] = fake.transactions
    assert fake.calls("GET", f"/transaction/verify/{reference}") == [200]
    async with session_factory() as session:
        row = (await session.scalars(select(Topup))).one()
    assert (row.reference, row.status) == (reference, "failed")
    assert "lost" in (row.failure or "")


async def test_a_refused_key_answers_502_with_a_code(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    headers, _ = await customer(client, session_factory)
    fake.secret_key = "sk_live_rotated"

    response = await client.post("/v1/billing/topups", json={"amount": AMOUNT, "currency": "NGN"}, headers=headers)

    assert response.status_code == 502
    assert response.json()["code"] == "paystack_refused"
    assert "sk_" not in response.text  # the key is never in an answer


async def test_only_the_owner_sees_a_top_up(client: httpx.AsyncClient, session_factory: Sessions) -> None:
    ada, _ = await customer(client, session_factory)
    bob, _ = await customer(client, session_factory, "bob@example.com")
    reference = (await start(client, ada))["reference"]

    assert (await client.get(f"/v1/billing/topups/{reference}", headers=ada)).status_code == 200
    others = await client.get(f"/v1/billing/topups/{reference}", headers=bob)
    made_up = await client.get("/v1/billing/topups/tu-00000000000000000000000000000000", headers=bob)
    anonymous = await client.get(f"/v1/billing/topups/{reference}")

    assert (others.status_code, others.json()["code"]) == (404, "topup_not_found")
    assert others.json()["detail"] == made_up.json()["detail"].replace("tu-00000000000000000000000000000000", reference)
    assert anonymous.status_code == 401


async def test_verify_credits_once_when_paystack_reports_success(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    headers, user_id = await customer(client, session_factory)
    reference = (await start(client, headers))["reference"]
    path = f"/v1/billing/topups/{reference}"

    assert (await client.get(path, headers=headers)).json()["status"] == "pending"
    fake.pay(reference)
    paid = [await client.get(path, headers=headers) for _ in range(3)]

    assert [r.json()["status"] for r in paid] == ["success"] * 3
    assert paid[0].json()["paid_at"] is not None
    assert await balance(session_factory, user_id) == AMOUNT
    assert await credits_of(session_factory, reference) == 1
    assert fake.calls("GET", f"/transaction/verify/{reference}") == [200, 200]  # not once it is settled
    async with session_factory() as session:
        row = await session.scalar(select(Topup).where(Topup.reference == reference))
        assert row is not None
        assert (row.settled_by, row.paid_amount, row.paystack_id) == (
            "verify",
            AMOUNT,
            fake.transactions[reference].paystack_id,
        )
        await assert_ledger_balances(session)


@pytest.mark.parametrize(("amount", "currency"), [(AMOUNT - 1, "NGN"), (AMOUNT * 10, "NGN"), (AMOUNT, "GHS")])
async def test_a_mismatched_success_credits_nothing_and_is_flagged(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack, amount: int, currency: str
) -> None:
    headers, user_id = await customer(client, session_factory)
    operator = await operator_headers(client, session_factory)
    reference = (await start(client, headers))["reference"]
    fake.pay(reference, amount=amount, currency=currency)

    answer = await client.get(f"/v1/billing/topups/{reference}", headers=headers)

    assert answer.json()["status"] == "mismatch"
    assert await balance(session_factory, user_id) == 0
    assert await credits_of(session_factory, reference) == 0
    flags = (await client.get("/v1/admin/billing/flags", headers=operator)).json()
    assert flags["total"] == 1
    [flag] = flags["items"]
    assert (flag["kind"], flag["reference"], flag["amount"], flag["user_id"]) == (
        "mismatch",
        reference,
        amount,
        str(user_id),
    )
    async with session_factory() as session:
        row = await session.scalar(select(Topup).where(Topup.reference == reference))
    assert row is not None
    assert row.flagged_at is not None
    assert (row.paid_amount, row.paid_currency) == (amount, currency)
    # Asking again changes nothing: one flag, still nothing credited.
    await client.get(f"/v1/billing/topups/{reference}", headers=headers)
    assert await count(session_factory, BillingFlag) == 1
    assert (await client.get("/v1/admin/billing/flags", headers=headers)).status_code == 403


async def test_paystack_down_while_reading_answers_the_stored_state(
    client: httpx.AsyncClient, session_factory: Sessions, fake: FakePaystack
) -> None:
    headers, _ = await customer(client, session_factory)
    reference = (await start(client, headers))["reference"]
    fake.pay(reference)
    fake.fail_next("GET", f"/transaction/verify/{reference}", 503, times=10)

    answer = await client.get(f"/v1/billing/topups/{reference}", headers=headers)

    assert (answer.status_code, answer.json()["status"]) == (200, "pending")


async def test_an_api_key_can_not_start_a_top_up(client: httpx.AsyncClient, session_factory: Sessions) -> None:
    headers, _ = await customer(client, session_factory)
    made = await client.post("/v1/api-keys", json={"name": "k", "scopes": ["wallet:read"]}, headers=headers)
    key = {"X-API-Key": made.json()["key"]}

    response = await client.post("/v1/billing/topups", json={"amount": AMOUNT, "currency": "NGN"}, headers=key)

    assert (response.status_code, response.json()["code"]) == (403, "insufficient_scope")


# --- real commits: webhook and verify racing ---------------------------------------------------------------


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[Sessions]:
    engine = create_async_engine(isolated_database, pool_size=30, max_overflow=0, pool_timeout=60)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_webhook_and_verify_racing_credit_once(committed: Sessions, fake: FakePaystack) -> None:
    broker = StubBroker()
    app = paystack_app(committed, fake, broker)
    async with serve_in_loop(app) as client:
        headers, user_id = await customer(client, committed)
        reference = (await start(client, headers))["reference"]
        tx = fake.pay(reference)
        body, signature = signed(charge_success(tx))
        assert (await client.post("/v1/webhooks/paystack", content=body, headers=signature)).status_code == 200
        async with committed() as session:
            event_id = await session.scalar(select(PaystackEvent.id))
        job = ProcessPaystackEvent(event_id=event_id)

        # The webhook's job (twice, as a redelivered message would) against ten concurrent verifying reads.
        reads = [client.get(f"/v1/billing/topups/{reference}", headers=headers) for _ in range(10)]
        runs = [worker.process(transactions(committed), job, app.state.settings) for _ in range(2)]
        outcomes = await asyncio.gather(*reads, *runs)
    await app.state.paystack.aclose()

    assert {r.json()["status"] for r in outcomes[:10]} <= {"pending", "success"}
    assert await balance(committed, user_id) == AMOUNT
    assert await credits_of(committed, reference) == 1
    async with committed() as session:
        await assert_ledger_balances(session)
        row = await session.scalar(select(Topup).where(Topup.reference == reference))
    assert row is not None
    assert row.status == "success"
    assert row.settled_by in {"webhook", "verify"}
    # One invoice, issued with the one credit, and one mail requested for it.
    assert await count(committed, Invoice, Invoice.source_reference == reference) == 1
    assert await count(committed, OutboxMessage, OutboxMessage.actor == EmailInvoice.actor_name) == 1
    assert fake.violations == []
