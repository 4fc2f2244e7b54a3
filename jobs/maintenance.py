"""Maintenance actors: the ping that proves the queue works end to end, and the periodic sweeps the scheduler sends."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import dramatiq

from jobs import runtime
from namaskah.domain.maintenance.jobs import ExpireVerifications, SlowPing, SweepOutbox, SweepRentals
from namaskah.domain.maintenance.schemas import PingRequested
from namaskah.domain.maintenance.service import PingService
from namaskah.domain.maintenance.worker import drain_outbox, run_tick
from namaskah.domain.rentals.sweeper import sweep_rentals
from namaskah.domain.verifications.sweeper import expire_overdue
from namaskah.lib.logging import get_logger
from namaskah.settings import Environment

logger = get_logger(__name__)

# A sweep that fails is not retried by Dramatiq (run_tick logs it; the next tick sweeps again); one that hangs is
# stopped by its time limit, well before the next few ticks pile up behind it.
SWEEP_TIME_LIMIT = 120_000


@dramatiq.actor(
    actor_name=PingRequested.actor_name,
    queue_name=PingRequested.queue_name,
    max_retries=5,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=30_000,
)
async def ping(payload: dict[str, Any]) -> None:
    job = PingRequested.decode(payload)
    async with runtime.transaction() as session:
        await PingService(session=session).record(job)


@dramatiq.actor(
    actor_name=SweepOutbox.actor_name, queue_name=SweepOutbox.queue_name, max_retries=0, time_limit=SWEEP_TIME_LIMIT
)
async def sweep_outbox(payload: dict[str, Any]) -> None:
    older_than, limit = timedelta(seconds=runtime.settings.outbox_sweep_after), runtime.settings.outbox_batch_size
    await run_tick(
        SweepOutbox.decode(payload), lambda: drain_outbox(runtime.relay(), older_than=older_than, limit=limit)
    )


@dramatiq.actor(
    actor_name=ExpireVerifications.actor_name,
    queue_name=ExpireVerifications.queue_name,
    max_retries=0,
    time_limit=SWEEP_TIME_LIMIT,
)
async def expire_verifications(payload: dict[str, Any]) -> None:
    await run_tick(ExpireVerifications.decode(payload), lambda: expire_overdue(runtime.relay()))


@dramatiq.actor(
    actor_name=SweepRentals.actor_name, queue_name=SweepRentals.queue_name, max_retries=0, time_limit=SWEEP_TIME_LIMIT
)
async def sweep_rental_periods(payload: dict[str, Any]) -> None:
    pending_timeout = timedelta(seconds=runtime.settings.rental_pending_timeout)
    await run_tick(
        SweepRentals.decode(payload), lambda: sweep_rentals(runtime.relay(), pending_timeout=pending_timeout)
    )


if runtime.settings.app_env is Environment.TEST:
    # Only the test suite's workers know it: a job long enough to kill its worker in the middle of it.
    @dramatiq.actor(actor_name=SlowPing.actor_name, queue_name=SlowPing.queue_name, max_retries=0, time_limit=60_000)
    async def slow_ping(payload: dict[str, Any]) -> None:
        job = SlowPing.decode(payload)
        logger.info("slow_ping_started", ping=job.token)
        await asyncio.sleep(job.seconds)
        async with runtime.transaction() as session:
            await PingService(session=session).record(PingRequested(token=job.token))
