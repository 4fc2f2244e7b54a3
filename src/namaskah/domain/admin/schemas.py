"""Bodies of the operator user routes."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from namaskah.domain.accounts.models import Role, Tier, User


class AdminUserRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    email: str
    tier: str
    role: str
    is_active: bool
    email_verified: bool
    totp_enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> AdminUserRead:
        return cls(
            id=user.id,
            email=user.email,
            tier=user.tier,
            role=user.role,
            is_active=user.is_active,
            email_verified=user.email_verified_at is not None,
            totp_enabled=user.totp_enabled,
            created_at=user.created_at,
        )


class AdminUserList(msgspec.Struct, frozen=True):
    items: list[AdminUserRead]
    total: int


class AdminUserUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only the fields sent change; an unknown field is refused rather than silently ignored."""

    tier: Tier | None = None
    role: Role | None = None
    is_active: bool | None = None
