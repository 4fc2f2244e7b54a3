"""The problems a provider's push can be answered with."""

from __future__ import annotations

from namaskah.lib.errors import DomainError


class BadSignature(DomainError):
    status_code = 401
    code = "bad_signature"
    title = "Bad signature"


class MalformedEvent(DomainError):
    status_code = 400
    code = "malformed_event"
    title = "Malformed event"


class ProviderEventsNotConfigured(DomainError):
    """No webhook secret: nothing can be told from a forgery, so nothing is taken. 503 rather than 404: the route
    exists and the vendor should keep retrying while an operator sets the secret (its retries carry the events
    over); a 5xx is also what alerting watches."""

    status_code = 503
    code = "provider_events_not_configured"
    title = "Provider events not configured"
