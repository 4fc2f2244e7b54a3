"""The subscription routes' refusals, each with its stable code."""

from __future__ import annotations

from namaskah.lib.errors import DomainError


class UnknownPlan(DomainError):
    status_code = 422
    code = "unknown_plan"
    title = "Unknown plan"


class PlanNotSubscribable(DomainError):
    status_code = 422
    code = "plan_not_subscribable"
    title = "This plan is not sold as a subscription"


class AlreadySubscribed(DomainError):
    status_code = 409
    code = "already_subscribed"
    title = "Already subscribed to this plan"


class SubscriptionChanged(DomainError):
    status_code = 409
    code = "subscription_changed"
    title = "The subscription changed meanwhile"


class SubscriptionNotFound(DomainError):
    status_code = 404
    code = "subscription_not_found"
    title = "No subscription"
