"""`/v1/admin/users`: operators list accounts and change their tier, role or active flag (audited)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, patch
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from namaskah.domain.accounts.models import Role, Tier
from namaskah.domain.admin.deps import admin_dependencies
from namaskah.domain.admin.schemas import AdminUserList, AdminUserRead, AdminUserUpdate
from namaskah.domain.admin.service import AdminUserService
from namaskah.lib.pagination import Limit, Offset


class AdminUserController(Controller):
    path = "/v1/admin/users"
    tags = ["admin"]
    dependencies = admin_dependencies

    @get("/", summary="Users, newest first; filter by part of the email, tier or role")
    async def list_users(
        self,
        *,
        admin_users: NamedDependency[AdminUserService],
        email: Annotated[str | None, QueryParameter(max_length=320)] = None,
        tier: FromQuery[Tier | None] = None,
        role: FromQuery[Role | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> AdminUserList:
        rows, total = await admin_users.list_users(email=email, tier=tier, role=role, limit=limit, offset=offset)
        return AdminUserList(items=[AdminUserRead.of(user) for user in rows], total=total)

    @patch("/{user_id:uuid}", summary="Change a user's tier, role or active flag")
    async def update_user(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[AdminUserUpdate],
        admin_users: NamedDependency[AdminUserService],
    ) -> AdminUserRead:
        user = await admin_users.update_user(user_id, tier=data.tier, role=data.role, is_active=data.is_active)
        return AdminUserRead.of(user)
