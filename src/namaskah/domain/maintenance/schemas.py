"""Bodies and job payloads of the maintenance area."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.lib.outbox.jobs import Job

Token = Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class PingRequested(Job, frozen=True, kw_only=True):
    actor_name = "maintenance.ping"
    queue_name = "default"

    token: Token


class PingCreate(msgspec.Struct, frozen=True):
    token: Token


class PingRead(msgspec.Struct, frozen=True):
    token: str
    request_id: str | None
    received_at: datetime | None
