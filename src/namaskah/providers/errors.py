"""What an upstream number provider's refusals and outages become: domain errors with stable codes."""

from __future__ import annotations

from namaskah.lib.errors import DomainError

# Retry-After on our 503 when the provider gave none: long enough for a throttle window or a restart to pass.
DEFAULT_RETRY_AFTER = 30


class ProviderError(DomainError):
    """Base of every provider failure; `vendor_code` keeps the provider's own error code for logs and callers.

    Details never quote the provider's free text (it is not ours to show customers) nor any credential."""

    status_code = 502
    code = "provider_error"
    title = "Number provider error"

    def __init__(
        self, detail: str | None = None, *, vendor_code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail, headers=headers)
        self.vendor_code = vendor_code


class ProviderUnavailable(ProviderError):
    """Unreachable, timing out, throttling or failing (429/5xx) past the retry limit, or unable to sell right now
    for a reason of our account with it: the same request may work later."""

    status_code = 503
    code = "provider_unavailable"
    title = "Number provider unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        vendor_code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.retry_after = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER
        super().__init__(detail, vendor_code=vendor_code, headers={"Retry-After": str(self.retry_after)})


class ProviderAuthFailed(ProviderError):
    """Our credentials were refused: an operator must fix them, so customers see a 503 like any outage."""

    status_code = 503
    code = "provider_auth_failed"
    title = "Number provider unavailable"

    def __init__(self, detail: str | None = None, *, vendor_code: str | None = None) -> None:
        super().__init__(detail, vendor_code=vendor_code, headers={"Retry-After": str(DEFAULT_RETRY_AFTER)})


class ProviderOutOfStock(ProviderError):
    """No number for that service and options now; another area code, carrier or service may have one."""

    status_code = 409
    code = "provider_out_of_stock"
    title = "No number available"


class ProviderPriceExceeded(ProviderError):
    """The provider's price is above the most the caller agreed to pay."""

    status_code = 409
    code = "provider_price_exceeded"
    title = "Provider price above the limit"


class ProviderRejected(ProviderError):
    """The provider refused the operation as asked or in the reservation's current state (e.g. a cancel after
    the code arrived, a refund after its window)."""

    status_code = 409
    code = "provider_rejected"
    title = "Number provider refused the request"


class ProviderNotFound(ProviderRejected):
    """The provider does not know that reservation."""

    status_code = 404
    code = "provider_not_found"
    title = "Reservation not found at the provider"


class ProviderUnsupportedOption(ProviderError):
    """The request asks for something this provider does not sell (a rental length, say); nothing was sent."""

    status_code = 422
    code = "provider_unsupported_option"
    title = "Option not offered by the number provider"


class ProviderBadResponse(ProviderError):
    """The provider answered something its own documentation does not allow (unknown status, unreadable body,
    a link to another host): a bug on one side, to be looked at, not retried blindly."""

    status_code = 502
    code = "provider_bad_response"
    title = "Unexpected answer from the number provider"


__all__ = [
    "ProviderAuthFailed",
    "ProviderBadResponse",
    "ProviderError",
    "ProviderNotFound",
    "ProviderOutOfStock",
    "ProviderPriceExceeded",
    "ProviderRejected",
    "ProviderUnavailable",
    "ProviderUnsupportedOption",
]
