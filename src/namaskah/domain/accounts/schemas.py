"""Request and response bodies of the authentication routes, /v1/me and its two-factor routes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")]
# Length rules live in the password policy (its error names the rule); this only bounds the body.
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
OpaqueToken = Annotated[str, msgspec.Meta(min_length=10, max_length=512)]
# A 6-digit TOTP code or a recovery code; what makes one valid is the service's rule, answered with its own code.
OneTimeCode = Annotated[str, msgspec.Meta(max_length=64)]


class RegisterRequest(msgspec.Struct, frozen=True):
    email: Email
    password: Password


class LoginRequest(msgspec.Struct, frozen=True):
    email: Email
    password: Password
    totp_code: OneTimeCode | None = None


class RefreshRequest(msgspec.Struct, frozen=True):
    refresh_token: OpaqueToken


class TotpCodeRequest(msgspec.Struct, frozen=True):
    code: OneTimeCode


class UserCreated(msgspec.Struct, frozen=True):
    id: uuid.UUID
    email: str
    tier: str


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret


class Me(msgspec.Struct, frozen=True):
    id: uuid.UUID
    email: str
    tier: str
    balance: int
    currency: str
    totp_enabled: bool
    kyc_level: str


class TotpSetup(msgspec.Struct, frozen=True):
    secret: str
    otpauth_uri: str


class RecoveryCodes(msgspec.Struct, frozen=True):
    recovery_codes: list[str]


class EmailTokenRequest(msgspec.Struct, frozen=True):
    token: OpaqueToken


class EmailVerified(msgspec.Struct, frozen=True):
    email_verified: bool


class ForgotPasswordRequest(msgspec.Struct, frozen=True):
    email: Email


class ResetPasswordRequest(msgspec.Struct, frozen=True):
    token: OpaqueToken
    new_password: Password


class ChangePasswordRequest(msgspec.Struct, frozen=True):
    current_password: Password
    new_password: Password
    # The caller's own refresh token: that session survives, every other one is revoked.
    refresh_token: OpaqueToken | None = None


class MailAccepted(msgspec.Struct, frozen=True):
    detail: str
