"""The safety net behind the delayed delivery jobs, for the scheduler to call: deliveries still pending past their
time (their message was lost with a Redis crash, or re-sending it failed) get a job again through the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta

from namaskah.db.base import utcnow
from namaskah.domain.webhooks.deliveries import WebhookDeliveryService
from namaskah.lib.outbox.relay import OutboxRelay

# A delivery whose message is merely in a busy queue is not overdue yet.
LATE_BY = timedelta(minutes=2)


async def sweep_due_deliveries(
    relay: OutboxRelay, *, now: datetime | None = None, late_by: timedelta = LATE_BY, limit: int = 500
) -> int:
    """Request a delivery job for each pending delivery due more than `late_by` ago that no attempt holds; at most
    `limit` a call, and how many it requested. Safe in several processes at once (rows are locked, skipped by the
    others) and to call often (a swept delivery is not overdue again for `late_by`)."""
    async with relay.transaction() as session:
        return await WebhookDeliveryService(session=session).request_overdue(
            now or utcnow(), late_by=late_by, limit=limit
        )
