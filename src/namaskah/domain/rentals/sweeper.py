"""Every API process renews auto-renewing rentals about to end, expires the others past their end, and fails and
refunds rentals pending too long, on a timer.

The conditional UPDATEs and the per-end ledger references make the sweep safe to run in every process at once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from namaskah.db.base import utcnow
from namaskah.domain.rentals.service import RentalService
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.relay import OutboxRelay

logger = get_logger(__name__)

# Renewals are charged this long before the end; shorter than the shortest period (1 day), so one end renews once.
RENEW_HORIZON = timedelta(hours=1)


async def sweep_rentals(relay: OutboxRelay, *, pending_timeout: timedelta) -> None:
    now = utcnow()
    async with relay.transaction() as session:
        service = RentalService(session=session)
        await service.fail_stale(now, pending_timeout)
        await service.renew_due(now, RENEW_HORIZON)
        await service.expire_due(now)


async def run_rental_sweeper(relay: OutboxRelay, *, interval: float, pending_timeout: timedelta) -> None:
    """Sweep forever; an error (the database restarting) is logged and the next round tries again."""
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_rentals(relay, pending_timeout=pending_timeout)
        except Exception:
            logger.exception("rental_sweep_failed")
