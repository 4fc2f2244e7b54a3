"""Subscriptions under real commits: five concurrent sweeps charge a period once, concurrent subscribes charge once,
and the customer paying a past-due period while sweeps run is charged once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.invoices.models import Invoice
from namaskah.domain.subscriptions.errors import AlreadySubscribed
from namaskah.domain.subscriptions.service import SubscriptionService
from namaskah.domain.subscriptions.worker import sweep_subscriptions
from namaskah.lib.outbox.relay import OutboxRelay
from tests.integration.test_subscriptions import PRO_CREDIT, PRO_PRICE, Sessions, balance, fund, references
from tests.integration.test_subscriptions_renewal import END, SETTINGS, T0, load, subscribed
from tests.integration.test_verifications import new_user
from tests.integration.test_wallet_ledger import assert_ledger_balances


@pytest.fixture
async def committed(isolated_database: str) -> AsyncIterator[Sessions]:
    """Sessions on a database of their own with a real pool: every commit and row lock is real."""
    engine = create_async_engine(isolated_database, pool_size=20, max_overflow=0, pool_timeout=60)
    yield create_session_factory(engine)
    await engine.dispose()


async def invoices_of(sessions: Sessions, prefix: str) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Invoice).where(Invoice.source_reference.startswith(prefix))
        return await session.scalar(query) or 0


async def test_five_concurrent_sweeps_charge_the_period_once(committed: Sessions) -> None:
    user_id, sub_id = await subscribed(committed, funds=3 * PRO_PRICE)
    relays = [OutboxRelay(committed, StubBroker()) for _ in range(5)]

    settled = await asyncio.gather(*(sweep_subscriptions(relay, SETTINGS, now=END) for relay in relays))

    assert sorted(settled) == [0, 0, 0, 0, 1]
    assert (await load(committed, sub_id)).period == 2
    assert [ref for ref, _, _ in await references(committed, f"subscription:{sub_id}:2")] == [
        f"subscription:{sub_id}:2",
        f"subscription:{sub_id}:2:credit",
    ]
    assert await invoices_of(committed, f"subscription:{sub_id}:2") == 1
    assert await balance(committed, user_id) == PRO_PRICE + 2 * PRO_CREDIT
    async with committed() as session:
        await assert_ledger_balances(session)


async def test_concurrent_subscribes_charge_once(committed: Sessions) -> None:
    user_id = (await new_user(committed, "eve@example.com")).id
    await fund(committed, user_id, 5 * PRO_PRICE)

    async def subscribe() -> str:
        async with committed() as session:
            try:
                await SubscriptionService(session, settings=SETTINGS).subscribe(user_id, "pro", now=T0)
            except AlreadySubscribed as exc:
                return exc.code
            await session.commit()
            return "subscribed"

    outcomes = await asyncio.gather(*(subscribe() for _ in range(5)))

    assert sorted(outcomes) == ["already_subscribed"] * 4 + ["subscribed"]
    assert await balance(committed, user_id) == 4 * PRO_PRICE + PRO_CREDIT
    assert await invoices_of(committed, "subscription:") == 1


async def test_paying_a_past_due_period_while_sweeps_run_charges_it_once(committed: Sessions) -> None:
    user_id, sub_id = await subscribed(committed)
    assert await sweep_subscriptions(OutboxRelay(committed, StubBroker()), SETTINGS, now=END) == 1
    await fund(committed, user_id, 2 * PRO_PRICE)
    now = END + timedelta(hours=1)

    async def pay() -> bool:
        async with committed() as session:
            charged = await SubscriptionService(session, settings=SETTINGS).subscribe(user_id, "pro", now=now)
            await session.commit()
            return charged

    sweeps = [sweep_subscriptions(OutboxRelay(committed, StubBroker()), SETTINGS, now=now) for _ in range(4)]
    results = await asyncio.gather(pay(), *sweeps, return_exceptions=True)

    # Whoever came first paid period 2; the customer, if second, found an active subscription (409) instead.
    paid_by_customer = results[0] is True
    assert paid_by_customer or getattr(results[0], "code", None) == "already_subscribed"
    assert sum(r for r in results[1:] if isinstance(r, int)) == (0 if paid_by_customer else 1)
    subscription = await load(committed, sub_id)
    assert (subscription.status, subscription.period) == ("active", 2)
    charged = await references(committed, f"subscription:{sub_id}:")
    assert [ref for ref, kind, _ in charged if kind == "subscription"] == [
        f"subscription:{sub_id}:1",
        f"subscription:{sub_id}:2",
    ]
    assert await balance(committed, user_id) == PRO_PRICE + 2 * PRO_CREDIT
