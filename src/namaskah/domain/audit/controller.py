"""`/v1/admin/audit-logs`: operators read the audit log, newest first, filtered."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from namaskah.domain.admin.deps import admin_dependencies
from namaskah.domain.audit.schemas import AuditLogList, AuditLogRead
from namaskah.domain.audit.service import AuditService
from namaskah.lib.pagination import Limit, Offset

Text = Annotated[str | None, QueryParameter(max_length=128)]


class AuditLogController(Controller):
    path = "/v1/admin/audit-logs"
    tags = ["admin"]
    dependencies = admin_dependencies

    @get("/", summary="Audit entries, newest first; `since` is inclusive, `until` exclusive")
    async def list_entries(
        self,
        *,
        audit_log: NamedDependency[AuditService],
        action: Text = None,
        actor_user_id: FromQuery[uuid.UUID | None] = None,
        subject_type: Text = None,
        subject_id: Text = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> AuditLogList:
        rows, total = await audit_log.list_entries(
            action=action,
            actor_user_id=actor_user_id,
            subject_type=subject_type,
            subject_id=subject_id,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        return AuditLogList(items=[AuditLogRead.of(entry) for entry in rows], total=total)
