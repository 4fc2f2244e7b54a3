"""The renewal sweep on an injected clock: renewal at the period end with its credit once, grace then downgrade,
cancel at the period end and not before, scheduled downgrades, paying a past-due period, and tax on top (under
TAX_POINT=usage; test_tax_point has both tax points)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from namaskah.domain.accounts.models import User
from namaskah.domain.audit.models import AuditLog
from namaskah.domain.invoices.models import Invoice
from namaskah.domain.subscriptions.models import Subscription
from namaskah.domain.subscriptions.periods import add_month
from namaskah.domain.subscriptions.service import SubscriptionService
from namaskah.domain.subscriptions.worker import sweep_subscriptions
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.settings import Settings
from tests.integration.test_subscriptions import (
    ENTERPRISE_CREDIT,
    ENTERPRISE_PRICE,
    PRO_CREDIT,
    PRO_PRICE,
    Sessions,
    balance,
    fund,
    references,
    tier_changes,
    tier_of,
)
from tests.integration.test_verifications import new_user
from tests.support.databases import make_settings

SETTINGS = make_settings()  # SUBSCRIPTION_GRACE_DAYS=3
T0 = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
END = datetime(2026, 2, 28, 9, 30, tzinfo=UTC)  # a month after the 31st of January
SECOND = timedelta(seconds=1)


async def subscribed(
    sessions: Sessions, plan: str = "pro", *, funds: int = PRO_PRICE, settings: Settings = SETTINGS
) -> tuple[uuid.UUID, uuid.UUID]:
    """A user subscribed to `plan` at T0 with `funds` in the wallet beforehand: (user id, subscription id)."""
    user_id = (await new_user(sessions, f"{uuid.uuid4().hex[:8]}@example.com")).id
    await fund(sessions, user_id, funds)
    async with sessions() as session:
        assert await SubscriptionService(session, settings=settings).subscribe(user_id, plan, now=T0)
        await session.commit()
    return user_id, await subscription_id_of(sessions, user_id)


async def subscription_id_of(sessions: Sessions, user_id: uuid.UUID) -> uuid.UUID:
    async with sessions() as session:
        found = await session.scalar(select(Subscription.id).where(Subscription.user_id == user_id))
    assert found is not None
    return found


async def load(sessions: Sessions, subscription_id: uuid.UUID) -> Subscription:
    async with sessions() as session:
        return (await session.scalars(select(Subscription).where(Subscription.id == subscription_id))).one()


async def sweep(sessions: Sessions, now: datetime, settings: Settings = SETTINGS) -> int:
    return await sweep_subscriptions(OutboxRelay(sessions, StubBroker()), settings, now=now)


async def charges(sessions: Sessions, subscription_id: uuid.UUID) -> list[str]:
    return [ref for ref, kind, _ in await references(sessions, f"subscription:{subscription_id}:")]


def test_periods_end_on_the_anchor_day_clamped_to_short_months() -> None:
    ends, end = [], T0
    for _ in range(4):
        end = add_month(end, T0)
        ends.append(end.date().isoformat())
    assert ends == ["2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]
    assert add_month(datetime(2026, 12, 15, 8, tzinfo=UTC), T0) == datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    assert add_month(datetime(2027, 12, 1, tzinfo=UTC), datetime(2027, 12, 1, tzinfo=UTC)).year == 2028


async def test_renewal_at_the_period_end_charges_and_credits_once(session_factory: Sessions) -> None:
    user_id, sub_id = await subscribed(session_factory, funds=2 * PRO_PRICE)
    assert (await load(session_factory, sub_id)).current_period_end == END

    assert await sweep(session_factory, END - SECOND) == 0
    assert (await load(session_factory, sub_id)).period == 1

    assert await sweep(session_factory, END) == 1
    renewed = await load(session_factory, sub_id)
    assert (renewed.period, renewed.status, renewed.current_period_start) == (2, "active", END)
    assert renewed.current_period_end == datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    for later in (END, END + timedelta(days=1)):  # the same period is never charged or credited again
        assert await sweep(session_factory, later) == 0
    assert await charges(session_factory, sub_id) == [
        f"subscription:{sub_id}:1",
        f"subscription:{sub_id}:1:credit",
        f"subscription:{sub_id}:2",
        f"subscription:{sub_id}:2:credit",
    ]
    assert await balance(session_factory, user_id) == 2 * PRO_CREDIT
    async with session_factory() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.source_reference == f"subscription:{sub_id}:2"))
    assert invoice is not None
    assert (invoice.gross_total, invoice.issued_at) == (PRO_PRICE, END)
    assert await tier_changes(session_factory, user_id) == [("free", "pro")]  # a renewal changes no tier


async def test_an_unpaid_renewal_keeps_the_plan_through_the_grace_then_lapses_to_free(
    session_factory: Sessions,
) -> None:
    # The included credit (100,000) is left after the first period: short of the next price.
    user_id, sub_id = await subscribed(session_factory)

    assert await sweep(session_factory, END) == 1
    late = await load(session_factory, sub_id)
    assert (late.status, late.period, late.current_period_end) == ("past_due", 1, END)
    async with session_factory() as session:
        service = SubscriptionService(session, settings=SETTINGS)
        assert service.grace_ends_at(late) == END + timedelta(days=3)
    for now in (END + timedelta(hours=1), END + timedelta(days=3) - SECOND):  # retried, still in grace
        assert await sweep(session_factory, now) == 1
        assert (await load(session_factory, sub_id)).status == "past_due"
        assert await tier_of(session_factory, user_id) == "pro"

    assert await sweep(session_factory, END + timedelta(days=3)) == 1

    lapsed = await load(session_factory, sub_id)
    assert (lapsed.status, lapsed.ended_at) == ("lapsed", END + timedelta(days=3))
    assert await tier_of(session_factory, user_id) == "free"
    assert await tier_changes(session_factory, user_id) == [("free", "pro"), ("pro", "free")]
    assert await charges(session_factory, sub_id) == [f"subscription:{sub_id}:1", f"subscription:{sub_id}:1:credit"]
    assert await balance(session_factory, user_id) == PRO_CREDIT
    assert await sweep(session_factory, END + timedelta(days=30)) == 0  # nothing more to do with it


async def test_a_top_up_during_the_grace_renews_at_the_next_sweep(session_factory: Sessions) -> None:
    user_id, sub_id = await subscribed(session_factory)
    assert await sweep(session_factory, END) == 1
    await fund(session_factory, user_id, PRO_PRICE - PRO_CREDIT)

    assert await sweep(session_factory, END + timedelta(days=1)) == 1

    renewed = await load(session_factory, sub_id)
    # Billing stays continuous: the paid period runs from the old end, as the plan did during the grace.
    assert (renewed.status, renewed.period, renewed.current_period_start) == ("active", 2, END)
    assert await balance(session_factory, user_id) == PRO_CREDIT
    assert await tier_of(session_factory, user_id) == "pro"


async def test_the_customer_pays_a_past_due_period_at_once(session_factory: Sessions) -> None:
    user_id, sub_id = await subscribed(session_factory)
    assert await sweep(session_factory, END) == 1
    async with session_factory() as session:
        service = SubscriptionService(session, settings=SETTINGS)
        cancelled = await service.cancel(user_id, now=END + SECOND)
        assert (cancelled.status, cancelled.ended_at) == ("canceled", END + SECOND)
        await session.rollback()  # (a past-due subscription cancelled ends at once; undo that and pay instead)
    await fund(session_factory, user_id, PRO_PRICE)
    async with session_factory() as session:
        assert await SubscriptionService(session, settings=SETTINGS).subscribe(user_id, "pro", now=END + SECOND)
        await session.commit()
    paid = await load(session_factory, sub_id)
    assert (paid.status, paid.period, paid.current_period_start) == ("active", 2, END)
    assert await sweep(session_factory, END + timedelta(days=3)) == 0


async def test_a_cancelled_subscription_ends_at_the_period_end_and_not_before(session_factory: Sessions) -> None:
    user_id, sub_id = await subscribed(session_factory, funds=2 * PRO_PRICE)
    async with session_factory() as session:
        await SubscriptionService(session, settings=SETTINGS).cancel(user_id, now=T0 + timedelta(days=3))
        await session.commit()

    assert await sweep(session_factory, END - SECOND) == 0
    assert (await load(session_factory, sub_id)).status == "active"
    assert await tier_of(session_factory, user_id) == "pro"

    assert await sweep(session_factory, END) == 1

    ended = await load(session_factory, sub_id)
    assert (ended.status, ended.ended_at, ended.period) == ("canceled", END, 1)
    assert await tier_of(session_factory, user_id) == "free"
    assert await tier_changes(session_factory, user_id) == [("free", "pro"), ("pro", "free")]
    assert await charges(session_factory, sub_id) == [f"subscription:{sub_id}:1", f"subscription:{sub_id}:1:credit"]
    assert await balance(session_factory, user_id) == PRO_PRICE + PRO_CREDIT


async def test_a_scheduled_downgrade_takes_over_at_the_renewal(session_factory: Sessions) -> None:
    user_id, sub_id = await subscribed(session_factory, "enterprise", funds=ENTERPRISE_PRICE + PRO_PRICE)
    async with session_factory() as session:
        assert not await SubscriptionService(session, settings=SETTINGS).subscribe(user_id, "pro", now=T0)
        await session.commit()
    assert await tier_of(session_factory, user_id) == "enterprise"

    assert await sweep(session_factory, END) == 1

    renewed = await load(session_factory, sub_id)
    assert (renewed.plan, renewed.next_plan, renewed.period, renewed.price) == ("pro", None, 2, PRO_PRICE)
    assert await tier_of(session_factory, user_id) == "pro"
    assert await balance(session_factory, user_id) == ENTERPRISE_CREDIT + PRO_CREDIT
    assert await tier_changes(session_factory, user_id) == [("free", "enterprise"), ("enterprise", "pro")]


async def test_a_disabled_account_is_not_charged_again(session_factory: Sessions) -> None:
    user_id, sub_id = await subscribed(session_factory, funds=2 * PRO_PRICE)
    async with session_factory() as session:
        user = await session.get(User, user_id)
        assert user is not None
        user.is_active = False
        await session.commit()

    assert await sweep(session_factory, END) == 1

    assert (await load(session_factory, sub_id)).status == "canceled"
    assert await balance(session_factory, user_id) == PRO_PRICE + PRO_CREDIT
    async with session_factory() as session:
        reason = await session.scalar(
            select(AuditLog.after).where(AuditLog.action == "subscription.ended", AuditLog.subject_id == str(sub_id))
        )
    assert reason == {"status": "canceled", "reason": "account_disabled"}


async def test_with_exclusive_tax_at_usage_the_wallet_pays_price_plus_vat(session_factory: Sessions) -> None:
    exclusive = make_settings(TAX_MODE="exclusive", TAX_POINT="usage")  # with TAX_POINT=payment: test_tax_point
    gross = PRO_PRICE + PRO_PRICE * 750 // 10_000  # Nigeria's 7.5% VAT on top
    async with session_factory() as session:
        plans = {tier.name: charged for tier, charged in await SubscriptionService(session, settings=exclusive).plans()}
    assert plans == {"free": 0, "payg": 0, "pro": gross, "enterprise": ENTERPRISE_PRICE * 10_750 // 10_000}
    user_id, sub_id = await subscribed(session_factory, funds=gross, settings=exclusive)

    assert await balance(session_factory, user_id) == PRO_CREDIT
    assert (await load(session_factory, sub_id)).price == gross
    async with session_factory() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.source_reference == f"subscription:{sub_id}:1"))
    assert invoice is not None
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (PRO_PRICE, gross - PRO_PRICE, gross)
