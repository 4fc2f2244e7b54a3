"""The dev-mode Paystack sandbox: its checkout page, paying there sending a correctly signed charge.success through the
real receiver, verify answering from its state, its answers holding to Paystack's document, and its absence in
production."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.domain.billing import sandbox
from namaskah.domain.billing.events import sign
from namaskah.domain.billing.jobs import DeliverSandboxEvent
from namaskah.domain.billing.paystack_schemas import InitializeRequest, encoder
from namaskah.domain.billing.sandbox_api import SandboxTransport
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.settings import DEV_PAYSTACK_SECRET_KEY, SettingsError, load_settings
from tests.conftest import serve_in_loop
from tests.integration.test_billing_topups import AMOUNT, balance, credits_of, start
from tests.integration.test_billing_webhooks import run_jobs
from tests.integration.test_verifications import customer, transactions
from tests.support.databases import make_settings
from tests.support.fake_paystack import check_request, check_response

Sessions = async_sessionmaker[AsyncSession]
BASE = "http://testserver"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app(session_factory: Sessions, stub_broker: StubBroker) -> Litestar:
    # The suite's default settings: the sandbox key, so the sandbox answers; links point at the test client.
    return create_app(make_settings(PUBLIC_BASE_URL=BASE), session_factory=session_factory, broker=stub_broker)


async def delivery_jobs(sessions: Sessions) -> list[DeliverSandboxEvent]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.actor == DeliverSandboxEvent.actor_name)
        )
        return [DeliverSandboxEvent.decode(p) for p in rows.all()]


async def deliver_all(client: httpx.AsyncClient, sessions: Sessions) -> None:
    """What the sandbox's job does in the worker: POST the signed event to PUBLIC_BASE_URL (here, the test client)."""
    settings = make_settings(PUBLIC_BASE_URL=BASE)
    for job in await delivery_jobs(sessions):
        assert await sandbox.deliver(transactions(sessions), settings, client, job) == 200


async def test_top_up_pay_on_the_checkout_page_and_get_credited(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    headers, user_id = await customer(client, session_factory)
    created = await start(client, headers)
    reference = created["reference"]
    assert created["authorization_url"] == f"{BASE}/v1/billing/sandbox/checkout/{reference}"

    page = await client.get(created["authorization_url"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "NGN 5000.00" in page.text
    assert 'id="pay"' in page.text
    assert reference in page.text

    paid = await client.post(created["authorization_url"])
    again = await client.post(created["authorization_url"])  # a double click
    assert paid.status_code == again.status_code == 200
    assert 'id="status"' in paid.text
    assert len(await delivery_jobs(session_factory)) == 1

    await deliver_all(client, session_factory)
    await run_jobs(session_factory)

    assert await balance(session_factory, user_id) == AMOUNT
    assert (await client.get(f"/v1/billing/topups/{reference}", headers=headers)).json()["status"] == "success"
    assert await credits_of(session_factory, reference) == 1


async def test_verify_answers_from_the_sandbox_and_the_late_webhook_credits_nothing_more(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    headers, user_id = await customer(client, session_factory)
    created = await start(client, headers)
    path = f"/v1/billing/topups/{created['reference']}"
    assert (await client.get(path, headers=headers)).json()["status"] == "pending"  # the sandbox says abandoned

    await client.post(created["authorization_url"])
    assert (await client.get(path, headers=headers)).json()["status"] == "success"  # verify, before any webhook
    await deliver_all(client, session_factory)
    await run_jobs(session_factory)

    assert await balance(session_factory, user_id) == AMOUNT
    assert await credits_of(session_factory, created["reference"]) == 1


async def test_the_sandbox_signs_its_webhook_as_paystack_does(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    headers, _ = await customer(client, session_factory)
    created = await start(client, headers)
    await client.post(created["authorization_url"])
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as http:
        [job] = await delivery_jobs(session_factory)
        await sandbox.deliver(transactions(session_factory), make_settings(PUBLIC_BASE_URL=BASE), http, job)

    [request] = sent
    assert str(request.url) == f"{BASE}/v1/webhooks/paystack"
    assert request.headers["x-paystack-signature"] == sign(request.content, DEV_PAYSTACK_SECRET_KEY)
    event = json.loads(request.content)
    assert (event["event"], event["data"]["reference"], event["data"]["amount"]) == (
        "charge.success",
        created["reference"],
        AMOUNT,
    )


async def test_a_failed_delivery_raises_so_the_job_is_retried(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    headers, _ = await customer(client, session_factory)
    await client.post((await start(client, headers))["authorization_url"])
    [job] = await delivery_jobs(session_factory)

    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503))) as http:
        with pytest.raises(sandbox.SandboxDeliveryFailed):
            await sandbox.deliver(transactions(session_factory), make_settings(PUBLIC_BASE_URL=BASE), http, job)


async def test_an_unknown_checkout_is_404(client: httpx.AsyncClient) -> None:
    for method in ("GET", "POST"):
        response = await client.request(method, "/v1/billing/sandbox/checkout/tu-unknown")
        assert (response.status_code, response.json()["code"]) == (404, "sandbox_transaction_not_found")


async def test_the_sandbox_answers_as_paystack_s_document_says(session_factory: Sessions) -> None:
    settings = make_settings(PUBLIC_BASE_URL=BASE)
    transport = SandboxTransport(session_factory, settings)
    reference = f"tu-{uuid.uuid4().hex}"
    body = InitializeRequest(
        email="ada@example.com", amount=AMOUNT, currency="NGN", reference=reference, metadata={"k": "v"}
    )
    auth = {"Authorization": f"Bearer {DEV_PAYSTACK_SECRET_KEY}"}

    async def call(request: httpx.Request, expected: int) -> httpx.Response:
        check_request(request, request.content)
        response = await transport.handle_async_request(request)
        await response.aread()
        assert response.status_code == expected, response.content
        check_response(request, request.content, response)
        return response

    url = "https://api.paystack.co"
    init = httpx.Request("POST", f"{url}/transaction/initialize", content=encoder.encode(body), headers=auth | JSON)
    await call(init, 200)
    await call(httpx.Request("POST", f"{url}/transaction/initialize", content=init.content, headers=auth | JSON), 400)
    await call(httpx.Request("GET", f"{url}/transaction/verify/{reference}", headers=auth), 200)
    await call(httpx.Request("GET", f"{url}/transaction/verify/tu-none", headers=auth), 404)
    async with session_factory() as session:
        await sandbox.SandboxService(session=session).pay(reference)
        await session.commit()
    verified = await call(httpx.Request("GET", f"{url}/transaction/verify/{reference}", headers=auth), 200)
    assert verified.json()["data"]["status"] == "success"
    listed = await call(
        httpx.Request("GET", f"{url}/transaction", params={"page": 1, "per_page": 10}, headers=auth), 200
    )
    assert listed.json()["meta"]["total"] == 1
    refused = await transport.handle_async_request(
        httpx.Request("GET", f"{url}/transaction", headers={"Authorization": "Bearer sk_live_x"})
    )
    assert refused.status_code == 401


async def test_production_has_no_sandbox_and_refuses_its_key(session_factory: Sessions) -> None:
    production = {
        "APP_ENV": "production",
        "DATABASE_URL": "postgresql+asyncpg://u@db/x",
        "REDIS_URL": "redis://r:6379/0",
        "SECRET_KEY": "s" * 40,
    }
    with pytest.raises(SettingsError, match="PAYSTACK_SECRET_KEY"):
        load_settings(production | {"PAYSTACK_SECRET_KEY": DEV_PAYSTACK_SECRET_KEY}, env_file=None)
    settings = load_settings(production | {"PAYSTACK_SECRET_KEY": "sk_live_abc"}, env_file=None)
    assert (settings.paystack_sandbox, settings.paystack_key) == (False, "sk_live_abc")
    assert "sk_live_abc" not in repr(settings)
    app = create_app(settings, session_factory=session_factory, broker=StubBroker())
    paths = {route.path for route in app.routes}
    assert "/v1/webhooks/paystack" in paths
    assert "/v1/billing/topups" in paths
    assert not any(path.startswith("/v1/billing/sandbox") for path in paths)
    # A real test key (not the sandbox's) talks to Paystack in dev mode too.
    assert load_settings({"PAYSTACK_SECRET_KEY": "sk_test_real"}, env_file=None).paystack_sandbox is False
    assert load_settings({}, env_file=None).paystack_key == DEV_PAYSTACK_SECRET_KEY


async def test_production_without_a_key_takes_no_webhook_and_no_top_up(session_factory: Sessions) -> None:
    """No key, no known key: a forged event must not be verifiable with the sandbox's public one."""
    settings = make_settings(APP_ENV="production", REDIS_URL="redis://127.0.0.1:6379/9", SECRET_KEY="s" * 40)
    assert settings.paystack_key == ""
    app = create_app(settings, session_factory=session_factory, broker=StubBroker())
    body = b'{"event": "charge.success", "data": {"id": 1}}'
    async with serve_in_loop(app) as client:
        forged = await client.post(
            "/v1/webhooks/paystack", content=body, headers={"x-paystack-signature": sign(body, DEV_PAYSTACK_SECRET_KEY)}
        )
        headers, _ = await customer(client, session_factory)
        topup = await client.post("/v1/billing/topups", json={"amount": AMOUNT, "currency": "NGN"}, headers=headers)
        page = await client.get("/v1/billing/sandbox/checkout/tu-x")
    assert (forged.status_code, forged.json()["code"]) == (503, "paystack_not_configured")
    assert (topup.status_code, topup.json()["code"]) == (503, "paystack_not_configured")
    assert page.status_code == 404
