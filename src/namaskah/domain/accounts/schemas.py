"""Request and response bodies of the authentication routes and /v1/me."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$")]
# Length rules live in the password policy (its error names the rule); this only bounds the body.
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
OpaqueToken = Annotated[str, msgspec.Meta(min_length=10, max_length=512)]


class RegisterRequest(msgspec.Struct, frozen=True):
    email: Email
    password: Password


class LoginRequest(msgspec.Struct, frozen=True):
    email: Email
    password: Password
    totp_code: str | None = None


class RefreshRequest(msgspec.Struct, frozen=True):
    refresh_token: OpaqueToken


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
