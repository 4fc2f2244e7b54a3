"""`GET /v1/billing/plans` (what each plan costs and gives) and `/v1/billing/subscription` (the caller's own:
read it, subscribe or change plan, cancel at period end)."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.subscriptions.models import Subscription
from namaskah.domain.subscriptions.schemas import PlanList, PlanRead, SubscriptionCreate, SubscriptionRead
from namaskah.domain.subscriptions.service import SubscriptionService
from namaskah.lib.money import CURRENCY


def provide_subscriptions(db_session: NamedDependency[AsyncSession], state: State) -> SubscriptionService:
    return SubscriptionService(session=db_session, settings=state.settings)


subscription_dependencies = {"subscriptions": Provide(provide_subscriptions, sync_to_thread=False)}


def _read(subscriptions: SubscriptionService, subscription: Subscription) -> SubscriptionRead:
    return SubscriptionRead.of(subscription, grace_ends_at=subscriptions.grace_ends_at(subscription))


class PlanController(Controller):
    path = "/v1/billing/plans"
    tags = ["billing"]
    dependencies = subscription_dependencies

    @get("/", summary="Every plan: monthly price, included credit, discount on services, limits and features")
    async def list_plans(self, subscriptions: NamedDependency[SubscriptionService], state: State) -> PlanList:
        plans = await subscriptions.plans()
        return PlanList(
            items=[PlanRead.of(tier, charged=charged, currency=CURRENCY) for tier, charged in plans],
            tax_mode=state.settings.tax_mode,
        )


class SubscriptionController(Controller):
    path = "/v1/billing/subscription"
    tags = ["billing"]
    dependencies = {**account_dependencies, **subscription_dependencies}

    @get(
        "/",
        summary="The caller's subscription (the current one, else the one that ended last)",
        description="404 `subscription_not_found` for a caller who never subscribed.",
    )
    async def show(
        self, principal: NamedDependency[Principal], subscriptions: NamedDependency[SubscriptionService]
    ) -> SubscriptionRead:
        principal.require(Scope.WALLET_READ)
        return _read(subscriptions, await subscriptions.latest(principal.user.id))

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Subscribe to a plan, or change plan; paid from the wallet",
        description="201 when a period was charged now: a new subscription, an upgrade to a plan that costs more "
        "(a full new period starts now; the rest of the old one is not refunded), or paying a past-due one. 200 "
        "when nothing is charged: a cheaper plan (it takes over at the period end) or the current plan again "
        "(undoes a pending cancel or downgrade). 402 `insufficient_credits` (nothing written), 409 "
        "`already_subscribed`, 422 `unknown_plan` or `plan_not_subscribable` (free and payg).",
    )
    async def subscribe(
        self,
        data: JSONBody[SubscriptionCreate],
        principal: NamedDependency[Principal],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[SubscriptionRead]:
        principal.require_session("change the subscription")
        charged = await subscriptions.subscribe(principal.user.id, data.plan)
        subscription = await subscriptions.latest(principal.user.id)
        return Response(_read(subscriptions, subscription), status_code=HTTP_201_CREATED if charged else HTTP_200_OK)

    @delete(
        "/",
        status_code=HTTP_200_OK,
        summary="Cancel at the period end (the plan stays until then, then the account returns to free)",
        description="A past-due subscription ends at once. 404 `subscription_not_found` without a current one.",
    )
    async def cancel(
        self, principal: NamedDependency[Principal], subscriptions: NamedDependency[SubscriptionService]
    ) -> SubscriptionRead:
        principal.require_session("change the subscription")
        return _read(subscriptions, await subscriptions.cancel(principal.user.id))
