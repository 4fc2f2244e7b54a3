"""Subscriptions paid from the wallet: subscribe, change plan and cancel; renew, grace and downgrade at period ends.

Every change takes the user's row lock first, then the subscription's, then the wallet's, and issues the invoice
last (its year counter is the last lock): one order everywhere, so the request paths and the sweep never deadlock.
A period is charged by a conditional UPDATE of the period counter and booked under the period's ledger reference,
so concurrent sweeps (or a sweep and the customer) charge it exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import ColumnElement, Select, and_, or_, select, update

from namaskah.db.base import utcnow
from namaskah.db.service import ConfiguredService
from namaskah.domain.accounts.models import Tier, User
from namaskah.domain.admin.service import UserNotFound
from namaskah.domain.audit.service import AuditService
from namaskah.domain.invoices.models import InvoiceKind
from namaskah.domain.invoices.service import InvoiceService, LineItem
from namaskah.domain.subscriptions.errors import (
    AlreadySubscribed,
    PlanNotSubscribable,
    SubscriptionChanged,
    SubscriptionNotFound,
    UnknownPlan,
)
from namaskah.domain.subscriptions.models import CURRENT, Subscription, SubscriptionStatus
from namaskah.domain.subscriptions.periods import add_month, charge_reference, credit_reference
from namaskah.domain.tax.service import Quote, TaxService
from namaskah.domain.tiers.models import TierPlan
from namaskah.domain.tiers.service import TierService
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import InsufficientCredits, WalletService
from namaskah.lib.logging import get_logger
from namaskah.lib.money import CURRENCY

logger = get_logger(__name__)
_S = Subscription
ACTIVE, PAST_DUE = SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value


class Outcome(StrEnum):
    """What the sweep did to one subscription."""

    RENEWED = "renewed"
    PAST_DUE = "past_due"  # could not be charged; retried by each sweep until the grace period ends
    LAPSED = "lapsed"
    CANCELED = "canceled"
    SKIPPED = "skipped"  # not due (any more): another sweep or the customer got there first


class SubscriptionRepository(SQLAlchemyAsyncRepository[Subscription]):
    model_type = Subscription


class SubscriptionService(ConfiguredService[Subscription, SubscriptionRepository]):
    """Joins the caller's transaction; `now` is the clock of every method (tests pass their own)."""

    repository_type = SubscriptionRepository

    @property
    def grace(self) -> timedelta:
        return timedelta(days=self.settings.subscription_grace_days)

    # --- reading ------------------------------------------------------------------------------------------

    async def plans(self) -> list[tuple[TierPlan, int]]:
        """Every tier with what a month of it charges the wallet: its price, taxed as TAX_MODE says when TAX_POINT is
        usage; the price itself when it is payment (the credits paying for it were taxed when topped up)."""
        tax = TaxService(self._session, settings=self.settings)
        rate = await tax.rate_for()
        tiers = await TierService(session=self._session).all()
        return [(tier, (await tax.quote_subscription(tier.price_per_month, rate=rate)).split.gross) for tier in tiers]

    async def latest(self, user_id: uuid.UUID) -> Subscription:
        """The user's current subscription, else the one that ended last; 404 `subscription_not_found`."""
        query = select(_S).where(_S.user_id == user_id).order_by(_S.created_at.desc(), _S.id.desc()).limit(1)
        subscription = (await self._session.scalars(query)).one_or_none()
        if subscription is None:
            raise SubscriptionNotFound("You have no subscription")
        return subscription

    def grace_ends_at(self, subscription: Subscription) -> datetime | None:
        if subscription.status != PAST_DUE:
            return None
        return subscription.current_period_end + self.grace

    async def due(
        self, now: datetime, *, after: tuple[datetime, uuid.UUID] | None = None, limit: int
    ) -> Sequence[tuple[datetime, uuid.UUID]]:
        """(period end, id) of current subscriptions whose period has ended, in that order, after `after`."""
        query = select(_S.current_period_end, _S.id).where(_S.status.in_(CURRENT), _S.current_period_end <= now)
        if after is not None:
            end, last_id = after
            query = query.where(or_(_S.current_period_end > end, and_(_S.current_period_end == end, _S.id > last_id)))
        rows = await self._session.execute(query.order_by(_S.current_period_end, _S.id).limit(limit))
        return rows.tuples().all()

    # --- the customer's changes ---------------------------------------------------------------------------

    async def subscribe(self, user_id: uuid.UUID, plan_name: str, *, now: datetime | None = None) -> bool:
        """Subscribe to `plan_name`, or change to it. Answers True when a period was charged now (a new
        subscription, an upgrade, or settling a past-due one), False when the change waits for the period end
        (a cheaper plan) or only undoes a pending cancel. 402 `insufficient_credits` writes nothing."""
        now = now or utcnow()
        plan = await self._plan(plan_name)
        if plan.price_per_month <= 0:
            raise PlanNotSubscribable(f"The {plan.name} plan costs nothing: cancel to return to free at period end")
        user = await self._lock_user(user_id)
        subscription = await self._current(user_id)
        if subscription is None:
            await self._open(user, plan, now)
            return True
        if subscription.status == PAST_DUE:
            # Pay the overdue period now, on the plan asked for; it runs from the old period end, as the tier did.
            await self._charge_or_conflict(user, subscription, plan, now, restart=False)
            return True
        if plan.name == subscription.plan:
            if not subscription.cancel_at_period_end and subscription.next_plan is None:
                raise AlreadySubscribed(f"You are subscribed to {plan.name} until {subscription.current_period_end}")
            await self._schedule(subscription, "subscription.resumed", cancel=False, next_plan=None)
            return False
        current = await self._plan(subscription.plan)
        if plan.price_per_month > current.price_per_month:
            # An upgrade applies now, for a full new period at the new price; the rest of the old one is not refunded.
            await self._charge_or_conflict(user, subscription, plan, now, restart=True)
            return True
        await self._schedule(subscription, "subscription.downgrade_scheduled", cancel=False, next_plan=plan.name)
        return False

    async def cancel(self, user_id: uuid.UUID, *, now: datetime | None = None) -> Subscription:
        """Cancel at the period end (the plan stays until then); a past-due subscription, whose period was never
        paid, ends now. Cancelling again changes nothing. 404 `subscription_not_found` without a current one."""
        now = now or utcnow()
        user = await self._lock_user(user_id)
        subscription = await self._current(user_id)
        if subscription is None:
            raise SubscriptionNotFound("You have no current subscription")
        if subscription.status == PAST_DUE:
            await self._end(user, subscription, SubscriptionStatus.CANCELED, at=now, reason="canceled")
        elif not subscription.cancel_at_period_end:
            await self._schedule(subscription, "subscription.cancel_scheduled", cancel=True, next_plan=None)
        return subscription

    # --- the sweep ----------------------------------------------------------------------------------------

    async def renew(self, subscription_id: uuid.UUID, now: datetime) -> Outcome:
        """Settle one subscription whose period ended: end it if cancelled (or the account was disabled), else
        charge the next period (on the scheduled cheaper plan, if any); a short wallet makes it past due, and
        past the grace period it lapses to free."""
        seen = await self._session.get(Subscription, subscription_id)
        if seen is None or not _is_due(seen, now):
            return Outcome.SKIPPED
        user = await self._lock_user(seen.user_id)
        subscription = await self._locked(subscription_id)
        if not _is_due(subscription, now):
            return Outcome.SKIPPED
        plan = await self._plan(subscription.next_plan or subscription.plan)
        if subscription.cancel_at_period_end or not user.is_active or plan.price_per_month <= 0:
            return await self._close(user, subscription, plan)
        try:
            if not await self._charge_period(user, subscription, plan, now, restart=False):
                return Outcome.SKIPPED
        except InsufficientCredits:
            return await self._unpaid(user, subscription, now)
        logger.info("subscription_renewed", subscription_id=str(subscription.id), period=subscription.period)
        return Outcome.RENEWED

    # --- internals ----------------------------------------------------------------------------------------

    async def _open(self, user: User, plan: TierPlan, now: datetime) -> Subscription:
        quote = await self._quote(plan)
        subscription = Subscription(
            user_id=user.id,
            plan=plan.name,
            status=ACTIVE,
            period=1,
            price=quote.split.gross,
            currency=CURRENCY,
            anchor_at=now,
            current_period_start=now,
            current_period_end=add_month(now, now),
            cancel_at_period_end=False,
        )
        # The charge first, in a savepoint: when the wallet is short, nothing at all is left behind.
        async with self._session.begin_nested():
            self._session.add(subscription)
            await self._session.flush()
            reference = charge_reference(subscription.id, 1)
            await self._wallet.debit(user.id, quote.split.gross, kind=EntryKind.SUBSCRIPTION, reference=reference)
        await self._audit("subscription.started", subscription, after=_terms(subscription))
        await self._paid(user, subscription, plan, quote, now)
        return subscription

    async def _close(self, user: User, subscription: Subscription, plan: TierPlan) -> Outcome:
        """End at the period end instead of renewing: cancelled, the account disabled, or the plan no longer sold
        (then the user keeps that free plan's tier rather than going to free)."""
        sold = plan.price_per_month > 0
        reason = "account_disabled" if not user.is_active else "canceled" if sold else "plan_not_sold"
        tier = Tier.FREE.value if sold else plan.name
        at = subscription.current_period_end
        ended = await self._end(user, subscription, SubscriptionStatus.CANCELED, at=at, reason=reason, tier=tier)
        return Outcome.CANCELED if ended else Outcome.SKIPPED

    async def _unpaid(self, user: User, subscription: Subscription, now: datetime) -> Outcome:
        """The wallet could not pay the next period: past due (the plan stays) until the grace ends, then lapsed."""
        end = subscription.current_period_end
        if now >= end + self.grace:
            lapsed = await self._end(user, subscription, SubscriptionStatus.LAPSED, at=now, reason="unpaid")
            return Outcome.LAPSED if lapsed else Outcome.SKIPPED
        still = (_S.status == ACTIVE, _S.period == subscription.period)
        if subscription.status == ACTIVE and await self._set(subscription, *still, status=PAST_DUE):
            await self._locked(subscription.id)
            await self._audit("subscription.past_due", subscription, after={"period_end": end.isoformat()})
            logger.info("subscription_past_due", subscription_id=str(subscription.id))
        return Outcome.PAST_DUE

    async def _charge_or_conflict(
        self, user: User, subscription: Subscription, plan: TierPlan, now: datetime, *, restart: bool
    ) -> None:
        before = _terms(subscription)
        if not await self._charge_period(user, subscription, plan, now, restart=restart):
            raise SubscriptionChanged("Your subscription changed while this request ran; read it and try again")
        await self._audit("subscription.period_started", subscription, before=before, after=_terms(subscription))

    async def _charge_period(
        self, user: User, subscription: Subscription, plan: TierPlan, now: datetime, *, restart: bool
    ) -> bool:
        """Start period n + 1 on `plan` and charge it: from the period end, or from `now` on a new anchor when
        `restart`. False (nothing written) when the period counter moved meanwhile; InsufficientCredits (nothing
        written) when the wallet is short."""
        quote = await self._quote(plan)
        start, anchor = (now, now) if restart else (subscription.current_period_end, subscription.anchor_at)
        period = subscription.period + 1
        async with self._session.begin_nested():
            moved = await self._set(
                subscription,
                _S.period == subscription.period,
                _S.status.in_(CURRENT),
                period=period,
                plan=plan.name,
                next_plan=None,
                status=ACTIVE,
                price=quote.split.gross,
                anchor_at=anchor,
                current_period_start=start,
                current_period_end=add_month(start, anchor),
                cancel_at_period_end=False,
            )
            if not moved:
                return False
            reference = charge_reference(subscription.id, period)
            await self._wallet.debit(user.id, quote.split.gross, kind=EntryKind.SUBSCRIPTION, reference=reference)
        await self._locked(subscription.id)  # the row as the UPDATE left it
        await self._paid(user, subscription, plan, quote, now)
        return True

    async def _paid(self, user: User, subscription: Subscription, plan: TierPlan, quote: Quote, now: datetime) -> None:
        """What follows a paid period: its included credit, the tier, and (last) its invoice."""
        period = subscription.period
        if plan.included_monthly_credit > 0:
            await self._wallet.credit(
                user.id,
                plan.included_monthly_credit,
                kind=EntryKind.SUBSCRIPTION_CREDIT,
                reference=credit_reference(subscription.id, period),
            )
        await self._set_tier(user, plan.name, subscription, reason="paid")
        line = LineItem(
            f"{plan.name.title()} plan, {subscription.current_period_start:%d %b %Y} to "
            f"{subscription.current_period_end:%d %b %Y}",
            plan.price_per_month,
        )
        await InvoiceService(self._session, settings=self.settings).issue(
            user_id=user.id,
            kind=InvoiceKind.SUBSCRIPTION,
            source_reference=charge_reference(subscription.id, period),
            lines=[line],
            currency=subscription.currency,
            rate=quote.rate,
            mode=quote.mode,
            now=now,
        )

    async def _end(
        self,
        user: User,
        subscription: Subscription,
        status: SubscriptionStatus,
        *,
        at: datetime,
        reason: str,
        tier: str = Tier.FREE.value,
    ) -> bool:
        ended = await self._set(
            subscription,
            _S.period == subscription.period,
            _S.status.in_(CURRENT),
            status=status.value,
            ended_at=at,
            next_plan=None,
        )
        if ended:
            await self._locked(subscription.id)
            await self._set_tier(user, tier, subscription, reason=reason)
            await self._audit("subscription.ended", subscription, after={"status": status.value, "reason": reason})
            logger.info("subscription_ended", subscription_id=str(subscription.id), status=status.value, reason=reason)
        return ended

    async def _schedule(self, subscription: Subscription, action: str, *, cancel: bool, next_plan: str | None) -> None:
        """A change that waits for the period end (or undoes one); audited, charges nothing."""
        before = {"cancel_at_period_end": subscription.cancel_at_period_end, "next_plan": subscription.next_plan}
        after = {"cancel_at_period_end": cancel, "next_plan": next_plan}
        if after != before:  # asking twice records one change
            subscription.cancel_at_period_end, subscription.next_plan = cancel, next_plan
            await self._audit(action, subscription, before=before, after=after)

    async def _set_tier(self, user: User, tier: str, subscription: Subscription, *, reason: str) -> None:
        """Change users.tier through the ORM, like the operators' PATCH: the flush marks the user's caller stamp,
        renewed after commit, so every API process prices and rate-limits the next request on the new tier."""
        if user.tier == tier:
            return
        before = user.tier
        user.tier = tier
        await AuditService(self._session).record(
            "subscription.tier_changed",
            subject_type="user",
            subject_id=user.id,
            before={"tier": before},
            after={"tier": tier, "subscription_id": str(subscription.id), "reason": reason},
        )
        logger.info("tier_changed_by_subscription", user_id=str(user.id), tier=tier, reason=reason)

    async def _audit(
        self,
        action: str,
        subscription: Subscription,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        await AuditService(self._session).record(
            action, subject_type="subscription", subject_id=subscription.id, before=before, after=after
        )

    async def _set(self, subscription: Subscription, *conditions: ColumnElement[bool], **values: Any) -> bool:
        """One conditional UPDATE of the row: of concurrent changes, the row lock lets exactly one match."""
        row = (
            await self._session.execute(
                update(_S)
                .where(_S.id == subscription.id, *conditions)
                .values(updated_at=utcnow(), **values)
                .returning(_S.id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        return row is not None

    async def _plan(self, name: str) -> TierPlan:
        plan = await self._session.get(TierPlan, name)
        if plan is None:
            raise UnknownPlan(f"There is no plan named {name!r}; GET /v1/billing/plans lists them")
        return plan

    async def _quote(self, plan: TierPlan) -> Quote:
        """What a month of `plan` charges the wallet, and the rate its invoice shows (0 under TAX_POINT=payment,
        labelled as charged on the top-ups: VAT is never added twice to the same money)."""
        return await TaxService(self._session, settings=self.settings).quote_subscription(plan.price_per_month)

    async def _lock_user(self, user_id: uuid.UUID) -> User:
        query = select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
        user = (await self._session.scalars(query)).one_or_none()
        if user is None:
            raise UserNotFound
        return user

    async def _current(self, user_id: uuid.UUID) -> Subscription | None:
        query = select(_S).where(_S.user_id == user_id, _S.status.in_(CURRENT))
        return (await self._session.scalars(_fresh(query))).one_or_none()

    async def _locked(self, subscription_id: uuid.UUID) -> Subscription:
        return (await self._session.scalars(_fresh(select(_S).where(_S.id == subscription_id)))).one()

    @property
    def _wallet(self) -> WalletService:
        return WalletService(session=self._session)


def _fresh(query: Select[tuple[Subscription]]) -> Select[tuple[Subscription]]:
    """Locked and re-read: a copy in the identity map must not hide a change another transaction committed."""
    return query.with_for_update().execution_options(populate_existing=True)


def _is_due(subscription: Subscription, now: datetime) -> bool:
    return subscription.status in CURRENT and subscription.current_period_end <= now


def _terms(subscription: Subscription) -> dict[str, Any]:
    return {
        "plan": subscription.plan,
        "period": subscription.period,
        "price": subscription.price,
        "period_end": subscription.current_period_end.isoformat(),
    }
