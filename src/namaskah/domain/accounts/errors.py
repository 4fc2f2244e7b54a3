"""The accounts area's refusals, each with its stable code."""

from __future__ import annotations

from namaskah.lib.errors import DomainError


class EmailTaken(DomainError):
    status_code = 409
    code = "email_taken"
    title = "Email already registered"


class InvalidCredentials(DomainError):
    status_code = 401
    code = "invalid_credentials"
    title = "Invalid email or password"


class InvalidRefreshToken(DomainError):
    status_code = 401
    code = "invalid_refresh_token"
    title = "Invalid or expired refresh token"


class RefreshReused(DomainError):
    status_code = 401
    code = "refresh_reused"
    title = "Refresh token already used"


class NotAuthenticated(DomainError):
    status_code = 401
    code = "not_authenticated"
    title = "Not authenticated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="namaskah"'})


class TotpRequired(DomainError):
    status_code = 401
    code = "totp_required"
    title = "Two-factor code required"


class InvalidTotpCode(DomainError):
    status_code = 422
    code = "invalid_totp_code"
    title = "Invalid two-factor code"


class TotpAlreadyEnabled(DomainError):
    status_code = 409
    code = "totp_already_enabled"
    title = "Two-factor authentication already enabled"


class TotpNotEnabled(DomainError):
    status_code = 409
    code = "totp_not_enabled"
    title = "Two-factor authentication not enabled"


class TotpNotSetUp(DomainError):
    status_code = 409
    code = "totp_not_set_up"
    title = "Two-factor authentication not set up"


class InvalidApiKey(DomainError):
    status_code = 401
    code = "invalid_api_key"
    title = "Invalid or revoked API key"


class InvalidEmailToken(DomainError):
    status_code = 400
    code = "invalid_email_token"
    title = "Invalid or already used link"


class EmailTokenExpired(DomainError):
    status_code = 400
    code = "email_token_expired"
    title = "Link expired"


class EmailAlreadyVerified(DomainError):
    status_code = 409
    code = "email_already_verified"
    title = "Email address already verified"
