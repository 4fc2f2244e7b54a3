"""Bodies of the audit log route."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from namaskah.domain.audit.models import AuditLog


class AuditLogRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    sequence: int
    occurred_at: datetime
    action: str
    actor_type: str
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    subject_type: str
    subject_id: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, entry: AuditLog) -> AuditLogRead:
        return cls(**{field: getattr(entry, field) for field in cls.__struct_fields__})


class AuditLogList(msgspec.Struct, frozen=True):
    items: list[AuditLogRead]
    total: int
