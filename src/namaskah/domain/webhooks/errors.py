"""What the webhook routes answer when a rule says no."""

from __future__ import annotations

from namaskah.lib.errors import DomainError


class WebhookEndpointNotFound(DomainError):
    status_code = 404
    code = "webhook_endpoint_not_found"
    title = "Webhook endpoint not found"


class WebhookDeliveryNotFound(DomainError):
    status_code = 404
    code = "webhook_delivery_not_found"
    title = "Webhook delivery not found"


class WebhookUrlInvalid(DomainError):
    status_code = 422
    code = "webhook_url_invalid"
    title = "Webhook URL not accepted"


class WebhookUrlForbidden(DomainError):
    """The host is, or resolves to, an address webhooks never reach (loopback, private, metadata...)."""

    status_code = 422
    code = "webhook_url_forbidden"
    title = "Webhook URL points at a forbidden address"


class WebhookUrlUnresolvable(DomainError):
    status_code = 422
    code = "webhook_url_unresolvable"
    title = "Webhook URL host does not resolve"


class TooManyWebhookEndpoints(DomainError):
    status_code = 409
    code = "too_many_webhook_endpoints"
    title = "Too many webhook endpoints"


class WebhookEndpointDisabled(DomainError):
    status_code = 409
    code = "webhook_endpoint_disabled"
    title = "Webhook endpoint is disabled"


class WebhookDeliveryInProgress(DomainError):
    status_code = 409
    code = "webhook_delivery_in_progress"
    title = "Webhook delivery is being sent"
