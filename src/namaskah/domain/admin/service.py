"""What operators do to accounts: list and change users, and create operators (from the CLI); all audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import func, select

from namaskah.db.base import utcnow
from namaskah.domain.accounts.models import Role, Tier, User
from namaskah.domain.accounts.service import AccountService, UserRepository
from namaskah.domain.audit.service import Actor, AuditService
from namaskah.lib.errors import DomainError
from namaskah.lib.logging import get_logger

logger = get_logger(__name__)


class UserNotFound(DomainError):
    status_code = 404
    code = "user_not_found"
    title = "User not found"


class AdminUserService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    repository_type = UserRepository

    async def list_users(
        self,
        *,
        email: str | None = None,
        tier: Tier | None = None,
        role: Role | None = None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[User], int]:
        """Newest first; `email` matches any part of the address."""
        filters = []
        if email:
            filters.append(User.email.contains(email.strip().lower(), autoescape=True))
        if tier is not None:
            filters.append(User.tier == tier.value)
        if role is not None:
            filters.append(User.role == role.value)
        session = self.repository.session
        rows = await session.scalars(
            select(User).where(*filters).order_by(User.created_at.desc(), User.id).limit(limit).offset(offset)
        )
        total = await session.scalar(select(func.count()).select_from(User).where(*filters))
        return rows.all(), total or 0

    async def update_user(
        self,
        user_id: uuid.UUID,
        *,
        tier: Tier | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> User:
        """Apply the given fields; the audit entry holds the old and new value of each one that changed."""
        query = select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
        user = (await self.repository.session.scalars(query)).one_or_none()
        if user is None:
            raise UserNotFound
        wanted: dict[str, Any] = {
            "tier": None if tier is None else tier.value,
            "role": None if role is None else role.value,
            "is_active": is_active,
        }
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for field, value in wanted.items():
            if value is not None and getattr(user, field) != value:
                before[field], after[field] = getattr(user, field), value
                setattr(user, field, value)
        if after:
            await AuditService(self.repository.session).record(
                "admin.user.updated", subject_type="user", subject_id=user.id, before=before, after=after
            )
            logger.info("user_updated_by_operator", user_id=str(user.id), fields=sorted(after))
        return user

    async def create_operator(self, accounts: AccountService, email: str, password: str, *, actor: Actor) -> User:
        """A new account with the operator role, under the usual password policy. The one running the command
        vouches for the address, so it counts as verified."""
        user = await accounts.register(email, password)
        user.role = Role.OPERATOR.value
        user.email_verified_at = utcnow()
        await AuditService(self.repository.session).record(
            "admin.user.created",
            subject_type="user",
            subject_id=user.id,
            after={"email": user.email, "role": user.role},
            actor=actor,
        )
        return user
