"""Plans and the caller's subscription over HTTP: subscribing charges once and changes prices and rate limits at
once (also for a process that cached the caller), a short wallet writes nothing, plan changes and cancelling, and
no one reaches another user's subscription."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.domain.accounts.models import User
from namaskah.domain.audit.models import AuditLog
from namaskah.domain.invoices.models import Invoice
from namaskah.domain.subscriptions.models import Subscription
from namaskah.domain.wallet.models import EntryKind, LedgerTransaction
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.outbox.models import OutboxMessage
from tests.conftest import serve_in_loop
from tests.integration.test_admin import headers_for
from tests.integration.test_api_keys import create_key
from tests.integration.test_catalog import synced
from tests.support.databases import REDIS_URL, make_settings

Sessions = async_sessionmaker[AsyncSession]
PRO_PRICE, PRO_CREDIT = 500_000, 100_000
ENTERPRISE_PRICE, ENTERPRISE_CREDIT = 2_500_000, 600_000


async def user_id_of(sessions: Sessions, email: str) -> uuid.UUID:
    async with sessions() as session:
        found = await session.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


async def fund(sessions: Sessions, user_id: uuid.UUID, amount: int) -> None:
    async with sessions() as session:
        await WalletService(session=session).credit(
            user_id, amount, kind=EntryKind.TOPUP, reference=f"paystack:{uuid.uuid4()}"
        )
        await session.commit()


async def balance(sessions: Sessions, user_id: uuid.UUID) -> int:
    async with sessions() as session:
        return await WalletService(session=session).balance_of(user_id)


async def tier_of(sessions: Sessions, user_id: uuid.UUID) -> str:
    async with sessions() as session:
        tier = await session.scalar(select(User.tier).where(User.id == user_id))
    assert tier is not None
    return tier


async def references(sessions: Sessions, prefix: str) -> list[tuple[str, str, int]]:
    """(reference, kind, amount) of the ledger transactions whose reference starts with `prefix`."""
    async with sessions() as session:
        rows = await session.execute(
            select(LedgerTransaction.reference, LedgerTransaction.kind, LedgerTransaction.amount)
            .where(LedgerTransaction.reference.startswith(prefix))
            .order_by(LedgerTransaction.reference)
        )
    return [(ref, kind, amount) for ref, kind, amount in rows.tuples()]


async def tier_changes(sessions: Sessions, user_id: uuid.UUID) -> list[tuple[str, str]]:
    """(before, after) tier of each audited subscription tier change of the user, oldest first."""
    async with sessions() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.action == "subscription.tier_changed", AuditLog.subject_id == str(user_id))
            .order_by(AuditLog.occurred_at, AuditLog.id)
        )
        return [(row.before["tier"], row.after["tier"]) for row in rows if row.before and row.after]


async def count(sessions: Sessions, model: type) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def whatsapp_price(client: AsyncClient, headers: dict[str, str]) -> int:
    response = await client.get("/v1/services", headers=headers)
    assert response.status_code == 200, response.text
    return next(item["price"] for item in response.json()["items"] if item["slug"] == "whatsapp")


async def test_plans_list_price_credit_discount_limits_and_flags(client: AsyncClient) -> None:
    response = await client.get("/v1/billing/plans")  # public, like the catalog: a pricing page needs no account
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tax_mode"] == "inclusive"
    plans = {plan["name"]: plan for plan in body["items"]}
    assert list(plans) == ["free", "payg", "pro", "enterprise"]
    assert plans["pro"] == {
        "name": "pro",
        "subscribable": True,
        "price_per_month": PRO_PRICE,
        "charged_per_month": PRO_PRICE,
        "currency": "NGN",
        "included_monthly_credit": PRO_CREDIT,
        "discount_bps": 1_000,
        "rate_limit_per_minute": 100,
        "features": {"rentals": True, "webhooks": True, "area_code_choice": True},
    }
    enterprise = plans["enterprise"]
    assert (enterprise["price_per_month"], enterprise["included_monthly_credit"]) == (ENTERPRISE_PRICE, 600_000)
    assert (enterprise["discount_bps"], enterprise["rate_limit_per_minute"]) == (2_000, 500)
    assert enterprise["features"] == {"rentals": True, "webhooks": True, "area_code_choice": True}
    for name in ("free", "payg"):
        assert (plans[name]["subscribable"], plans[name]["price_per_month"], plans[name]["charged_per_month"]) == (
            False,
            0,
            0,
        )


async def test_subscribing_charges_once_and_changes_prices_and_the_rate_limit_at_once(
    client: AsyncClient, session_factory: Sessions
) -> None:
    await synced(session_factory)
    ada = await headers_for(client, "ada@example.com")
    ada_id = await user_id_of(session_factory, "ada@example.com")
    await fund(session_factory, ada_id, PRO_PRICE + 1)
    free_price = await whatsapp_price(client, ada)
    assert (await client.get("/v1/me", headers=ada)).headers["ratelimit-limit"] == "10"

    response = await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["plan"], body["status"], body["period"], body["price"]) == ("pro", "active", 1, PRO_PRICE)
    assert (body["cancel_at_period_end"], body["next_plan"], body["grace_ends_at"]) == (False, None, None)
    assert await balance(session_factory, ada_id) == 1 + PRO_CREDIT
    sub = body["id"]
    assert await references(session_factory, f"subscription:{sub}") == [
        (f"subscription:{sub}:1", "subscription", PRO_PRICE),
        (f"subscription:{sub}:1:credit", "subscription_credit", PRO_CREDIT),
    ]
    # The next request is priced and limited on pro: 10% off, 100 a minute.
    assert await whatsapp_price(client, ada) == free_price * 9_000 // 10_000
    assert (await client.get("/v1/me", headers=ada)).headers["ratelimit-limit"] == "100"
    assert await tier_changes(session_factory, ada_id) == [("free", "pro")]
    async with session_factory() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.source_reference == f"subscription:{sub}:1"))
    assert invoice is not None
    assert (invoice.kind, invoice.user_id, invoice.gross_total) == ("subscription", ada_id, PRO_PRICE)

    again = await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)
    assert (again.status_code, again.json()["code"]) == (409, "already_subscribed")
    assert await balance(session_factory, ada_id) == 1 + PRO_CREDIT
    shown = await client.get("/v1/billing/subscription", headers=ada)
    assert (shown.status_code, shown.json()) == (200, body)


async def test_a_short_wallet_is_402_and_writes_nothing(client: AsyncClient, session_factory: Sessions) -> None:
    ada = await headers_for(client, "ada@example.com")
    ada_id = await user_id_of(session_factory, "ada@example.com")
    await fund(session_factory, ada_id, PRO_PRICE - 1)
    tables = (Subscription, LedgerTransaction, AuditLog, Invoice, OutboxMessage)
    before = [await count(session_factory, table) for table in tables]

    response = await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)

    assert (response.status_code, response.json()["code"]) == (402, "insufficient_credits")
    assert [await count(session_factory, table) for table in tables] == before
    assert await balance(session_factory, ada_id) == PRO_PRICE - 1
    assert await tier_of(session_factory, ada_id) == "free"
    missing = await client.get("/v1/billing/subscription", headers=ada)
    assert (missing.status_code, missing.json()["code"]) == (404, "subscription_not_found")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "platinum"}, 422, "unknown_plan"),
        ({"plan": "free"}, 422, "plan_not_subscribable"),
        ({"plan": "payg"}, 422, "plan_not_subscribable"),
        ({"plan": ""}, 422, "validation_failed"),
        ({"plan": 5}, 422, "validation_failed"),
        ({"plan": "pro", "coupon": "FREE"}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
    ],
)
async def test_bad_requests_are_refused_with_a_code_and_charge_nothing(
    client: AsyncClient, session_factory: Sessions, body: dict, status: int, code: str
) -> None:
    ada = await headers_for(client, "ada@example.com")
    ada_id = await user_id_of(session_factory, "ada@example.com")
    await fund(session_factory, ada_id, PRO_PRICE)
    response = await client.post("/v1/billing/subscription", json=body, headers=ada)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert await balance(session_factory, ada_id) == PRO_PRICE
    assert await count(session_factory, Subscription) == 0


async def test_anonymous_callers_and_api_keys_cannot_change_a_subscription(client: AsyncClient) -> None:
    for method in ("GET", "POST", "DELETE"):
        anonymous = await client.request(method, "/v1/billing/subscription", json={"plan": "pro"})
        assert anonymous.status_code == 401, method
    ada = await headers_for(client, "ada@example.com")
    key = {"X-API-Key": (await create_key(client, ada, ["wallet:read"]))["key"]}
    for method in ("POST", "DELETE"):
        refused = await client.request(method, "/v1/billing/subscription", json={"plan": "pro"}, headers=key)
        assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope"), method
    # Reading takes wallet:read, like the balance.
    assert (await client.get("/v1/billing/subscription", headers=key)).status_code == 404
    other = {"X-API-Key": (await create_key(client, ada, ["rentals:read"]))["key"]}
    assert (await client.get("/v1/billing/subscription", headers=other)).status_code == 403


async def test_no_one_reads_or_cancels_another_users_subscription(
    client: AsyncClient, session_factory: Sessions
) -> None:
    ada = await headers_for(client, "ada@example.com")
    bob = await headers_for(client, "bob@example.com")
    await fund(session_factory, await user_id_of(session_factory, "ada@example.com"), PRO_PRICE)
    assert (await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)).status_code == 201

    # The routes only ever address the caller's own subscription: bob has none, and ada's is as she left it.
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/v1/billing/subscription", headers=bob)
        assert (response.status_code, response.json()["code"]) == (404, "subscription_not_found"), method
    ada_sub = (await client.get("/v1/billing/subscription", headers=ada)).json()
    assert (ada_sub["status"], ada_sub["cancel_at_period_end"]) == ("active", False)
    assert await tier_of(session_factory, await user_id_of(session_factory, "bob@example.com")) == "free"


async def test_cancel_keeps_the_plan_until_the_period_end_and_can_be_undone(
    client: AsyncClient, session_factory: Sessions
) -> None:
    ada = await headers_for(client, "ada@example.com")
    ada_id = await user_id_of(session_factory, "ada@example.com")
    await fund(session_factory, ada_id, PRO_PRICE)
    created = (await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)).json()

    for _ in range(2):  # cancelling twice is the same cancel
        cancelled = await client.delete("/v1/billing/subscription", headers=ada)
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["cancel_at_period_end"]) == ("active", True)
        assert cancelled.json()["current_period_end"] == created["current_period_end"]
    assert await tier_of(session_factory, ada_id) == "pro"

    resumed = await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)
    assert (resumed.status_code, resumed.json()["cancel_at_period_end"]) == (200, False)
    assert resumed.json()["period"] == 1
    assert await balance(session_factory, ada_id) == PRO_CREDIT  # nothing charged again
    async with session_factory() as session:
        actions = (
            await session.scalars(
                select(AuditLog.action)
                .where(AuditLog.subject_id == created["id"])
                .order_by(AuditLog.occurred_at, AuditLog.id)
            )
        ).all()
    assert actions == ["subscription.started", "subscription.cancel_scheduled", "subscription.resumed"]


async def test_an_upgrade_starts_a_new_period_now_and_a_downgrade_waits_for_the_period_end(
    client: AsyncClient, session_factory: Sessions
) -> None:
    ada = await headers_for(client, "ada@example.com")
    ada_id = await user_id_of(session_factory, "ada@example.com")
    await fund(session_factory, ada_id, PRO_PRICE + ENTERPRISE_PRICE)
    first = (await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)).json()

    upgraded = await client.post("/v1/billing/subscription", json={"plan": "enterprise"}, headers=ada)

    assert upgraded.status_code == 201, upgraded.text
    body = upgraded.json()
    assert (body["id"], body["plan"], body["period"], body["price"]) == (first["id"], "enterprise", 2, ENTERPRISE_PRICE)
    assert body["current_period_start"] > first["current_period_start"]
    assert body["current_period_end"] > first["current_period_end"]
    assert await tier_of(session_factory, ada_id) == "enterprise"
    assert await balance(session_factory, ada_id) == PRO_CREDIT + ENTERPRISE_CREDIT
    assert (await client.get("/v1/me", headers=ada)).headers["ratelimit-limit"] == "500"

    short = await client.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)
    assert short.status_code == 200, short.text
    assert (short.json()["plan"], short.json()["next_plan"], short.json()["period"]) == ("enterprise", "pro", 2)
    assert await tier_of(session_factory, ada_id) == "enterprise"  # until the period end
    assert await balance(session_factory, ada_id) == PRO_CREDIT + ENTERPRISE_CREDIT
    assert await tier_changes(session_factory, ada_id) == [("free", "pro"), ("pro", "enterprise")]


@pytest.fixture
async def cached(session_factory: Sessions, redis_namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    """An API process with Redis: callers are cached, and stamps say when a cached copy is stale."""
    settings = make_settings(REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=redis_namespace)
    async with serve_in_loop(create_app(settings, session_factory=session_factory, broker=StubBroker())) as client:
        yield client


async def test_a_process_that_cached_the_caller_sees_the_new_tier_at_once(
    cached: httpx.AsyncClient, session_factory: Sessions
) -> None:
    await synced(session_factory)
    ada = await headers_for(cached, "ada@example.com")
    await fund(session_factory, await user_id_of(session_factory, "ada@example.com"), PRO_PRICE)
    for _ in range(3):  # learn the credential, cache the caller, serve it from the copy
        assert (await cached.get("/v1/me", headers=ada)).json()["tier"] == "free"
    free_price = await whatsapp_price(cached, ada)
    # Proof that the copy is used: a change behind the services' back (no stamp renewed) goes unseen.
    async with session_factory() as session:
        await session.execute(text("UPDATE users SET email = 'renamed@example.com'"))
        await session.commit()
    assert (await cached.get("/v1/me", headers=ada)).json()["email"] == "ada@example.com"

    assert (await cached.post("/v1/billing/subscription", json={"plan": "pro"}, headers=ada)).status_code == 201

    me = await cached.get("/v1/me", headers=ada)
    assert (me.json()["tier"], me.headers["ratelimit-limit"]) == ("pro", "100")
    assert await whatsapp_price(cached, ada) == free_price * 9_000 // 10_000
