"""The renewal sweep: every subscription whose period ended is settled in a transaction of its own."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

from namaskah.db.base import utcnow
from namaskah.domain.subscriptions.service import Outcome, SubscriptionService
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.settings import Settings

logger = get_logger(__name__)

# Subscriptions read per query; each is then settled (and committed) on its own.
SWEEP_BATCH = 200


class SweepIncomplete(Exception):
    """Some subscriptions raised; the others were settled, and the next sweep tries these again."""


async def sweep_subscriptions(
    relay: OutboxRelay, settings: Settings, *, now: datetime | None = None, batch: int = SWEEP_BATCH
) -> int:
    """Renew, mark or retry past due, lapse or end every due subscription; answers how many (all but those another
    sweep had settled first). One transaction per subscription: a failure stays with its subscription, and the
    invoice counter's lock is held briefly. Concurrent sweeps are safe (each period is charged once); each visits a
    subscription once per run."""
    now = now or utcnow()
    outcomes: Counter[Outcome] = Counter()
    failed = 0
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        async with relay.sessions() as session:
            due = await SubscriptionService(session=session, settings=settings).due(now, after=after, limit=batch)
        for _, subscription_id in due:
            try:
                async with relay.transaction() as session:
                    outcome = await SubscriptionService(session=session, settings=settings).renew(subscription_id, now)
            except Exception:
                failed += 1
                logger.exception("subscription_sweep_failed", subscription_id=str(subscription_id))
                continue
            outcomes[outcome] += 1
        if len(due) < batch:
            break
        after = due[-1]
    logger.info("subscriptions_swept", **{outcome.value: count for outcome, count in outcomes.items()})
    if failed:
        raise SweepIncomplete(f"{failed} subscriptions could not be settled; the next sweep tries them again")
    return sum(count for outcome, count in outcomes.items() if outcome is not Outcome.SKIPPED)
