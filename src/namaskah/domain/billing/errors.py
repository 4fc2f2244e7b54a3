"""The problems billing answers with, each with its stable code."""

from __future__ import annotations

from namaskah.lib.errors import DomainError


class PaystackUnavailable(DomainError):
    """Paystack did not answer (network, timeout, 5xx, 429 past our retries): try again shortly."""

    status_code = 503
    code = "paystack_unavailable"
    title = "Payment provider unavailable"


class PaystackRefused(DomainError):
    """Paystack answered with an error we can not fix by repeating (a bad key, a refused field)."""

    status_code = 502
    code = "paystack_refused"
    title = "Payment provider refused the request"

    def __init__(self, detail: str | None = None, *, vendor_code: str | None = None) -> None:
        super().__init__(detail)
        self.vendor_code = vendor_code


class DuplicateReference(PaystackRefused):
    """Paystack already holds a transaction under this reference: an earlier initialize of ours went through."""

    code = "paystack_duplicate_reference"


class PaystackBadResponse(DomainError):
    status_code = 502
    code = "paystack_bad_response"
    title = "Unreadable answer from the payment provider"


class AmountOutOfRange(DomainError):
    status_code = 422
    code = "amount_out_of_range"
    title = "Amount out of range"


class UnsupportedCurrency(DomainError):
    status_code = 422
    code = "unsupported_currency"
    title = "Unsupported currency"


class TopupNotFound(DomainError):
    status_code = 404
    code = "topup_not_found"
    title = "Top-up not found"


class BadSignature(DomainError):
    status_code = 401
    code = "bad_signature"
    title = "Bad signature"


class SourceNotAllowed(DomainError):
    status_code = 403
    code = "source_not_allowed"
    title = "Source address not allowed"


class MalformedEvent(DomainError):
    status_code = 400
    code = "malformed_event"
    title = "Malformed event"


class SandboxTransactionNotFound(DomainError):
    status_code = 404
    code = "sandbox_transaction_not_found"
    title = "No such sandbox transaction"


class PaystackNotConfigured(DomainError):
    """Production without PAYSTACK_SECRET_KEY: nothing can be charged, and no webhook can be told from a forgery.
    503 rather than 404: Paystack keeps retrying its webhooks (72 hours) while an operator sets the key."""

    status_code = 503
    code = "paystack_not_configured"
    title = "Payments not configured"
