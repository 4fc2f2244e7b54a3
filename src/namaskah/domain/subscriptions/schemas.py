"""Bodies of the plan and subscription routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.subscriptions.models import Subscription
from namaskah.domain.tiers.models import TierPlan

PlanName = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


class PlanFeatures(msgspec.Struct, frozen=True):
    rentals: bool
    webhooks: bool
    area_code_choice: bool


class PlanRead(msgspec.Struct, frozen=True):
    """`price_per_month` as configured; `charged_per_month` what the wallet pays for it under TAX_MODE (the same
    when prices include tax). Amounts in minor units of `currency`."""

    name: str
    subscribable: bool
    price_per_month: int
    charged_per_month: int
    currency: str
    included_monthly_credit: int
    discount_bps: int
    rate_limit_per_minute: int
    features: PlanFeatures

    @classmethod
    def of(cls, tier: TierPlan, *, charged: int, currency: str) -> PlanRead:
        return cls(
            name=tier.name,
            subscribable=tier.price_per_month > 0,
            price_per_month=tier.price_per_month,
            charged_per_month=charged,
            currency=currency,
            included_monthly_credit=tier.included_monthly_credit,
            discount_bps=tier.discount_bps,
            rate_limit_per_minute=tier.rate_limit_per_minute,
            features=PlanFeatures(rentals=tier.rentals, webhooks=tier.webhooks, area_code_choice=tier.area_code_choice),
        )


class PlanList(msgspec.Struct, frozen=True):
    items: list[PlanRead]
    tax_mode: str


class SubscriptionCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    plan: PlanName


class SubscriptionRead(msgspec.Struct, frozen=True):
    """`grace_ends_at` is set while `past_due`: the plan stays until then, and the renewal is retried."""

    id: uuid.UUID
    plan: str
    status: str
    period: int
    price: int
    currency: str
    current_period_start: datetime
    current_period_end: datetime
    cancel_at_period_end: bool
    next_plan: str | None
    grace_ends_at: datetime | None
    ended_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, subscription: Subscription, *, grace_ends_at: datetime | None) -> SubscriptionRead:
        return cls(
            id=subscription.id,
            plan=subscription.plan,
            status=subscription.status,
            period=subscription.period,
            price=subscription.price,
            currency=subscription.currency,
            current_period_start=subscription.current_period_start,
            current_period_end=subscription.current_period_end,
            cancel_at_period_end=subscription.cancel_at_period_end,
            next_plan=subscription.next_plan,
            grace_ends_at=grace_ends_at,
            ended_at=subscription.ended_at,
            created_at=subscription.created_at,
        )
