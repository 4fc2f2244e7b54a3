"""What the periodic actors do around their sweep: time it, log it, and keep a failure out of the dead letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from prometheus_client import Counter

from namaskah.db.base import utcnow
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.lib.scheduler import Tick

logger = get_logger(__name__)

PERIODIC_TASK_FAILURES = Counter(
    "periodic_task_failures_total", "Periodic jobs (sweeps sent by the scheduler) that raised.", ("task",)
)


async def run_tick(job: Tick, work: Callable[[], Awaitable[int | None]]) -> None:
    """Run one periodic job. An error is logged and counted, not raised: the next tick is the retry, and an
    outage must not fill the dead letters with one failed sweep per tick."""
    waited_ms = round((utcnow() - job.sent_at).total_seconds() * 1000)
    started = utcnow()
    try:
        count = await work()
    except Exception:
        PERIODIC_TASK_FAILURES.labels(job.actor_name).inc()
        logger.exception("periodic_task_failed", task=job.actor_name, waited_ms=waited_ms)
        return
    took_ms = round((utcnow() - started).total_seconds() * 1000)
    logger.info("periodic_task_done", task=job.actor_name, count=count, waited_ms=waited_ms, took_ms=took_ms)


async def drain_outbox(relay: OutboxRelay, *, older_than: timedelta, limit: int) -> int:
    """Sweep batches until one comes back short: a backlog after an outage goes out in one tick."""
    total = 0
    while True:
        sent = await relay.sweep(older_than=older_than, limit=limit)
        total += sent
        if sent < limit:
            return total
