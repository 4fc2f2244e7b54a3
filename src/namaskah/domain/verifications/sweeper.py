"""The safety net behind the poll jobs: every API process expires and refunds overdue verifications on a timer.

A verification whose poll job was lost (a Redis crash) would otherwise keep the customer's money forever; the
conditional UPDATE in `expire_due` makes the sweep safe to run in every process at once.
"""

from __future__ import annotations

import asyncio

from namaskah.db.base import utcnow
from namaskah.domain.verifications.service import VerificationService
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.relay import OutboxRelay

logger = get_logger(__name__)


async def expire_overdue(relay: OutboxRelay) -> int:
    async with relay.transaction() as session:
        return await VerificationService(session=session).expire_due(utcnow())


async def run_expiry_sweeper(relay: OutboxRelay, *, interval: float) -> None:
    """Sweep forever; an error (the database restarting) is logged and the next round tries again."""
    while True:
        await asyncio.sleep(interval)
        try:
            await expire_overdue(relay)
        except Exception:
            logger.exception("verification_expiry_sweep_failed")
