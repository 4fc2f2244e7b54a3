"""Maintenance actors: the ping that proves the queue works end to end."""

from __future__ import annotations

from typing import Any

import dramatiq

from jobs import runtime
from namaskah.domain.maintenance.schemas import PingRequested
from namaskah.domain.maintenance.service import PingService


@dramatiq.actor(actor_name=PingRequested.actor_name, queue_name=PingRequested.queue_name, max_retries=5)
async def ping(payload: dict[str, Any]) -> None:
    job = PingRequested.decode(payload)
    async with runtime.transaction() as session:
        await PingService(session=session).record(job)
