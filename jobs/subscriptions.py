"""Subscription actors: the renewal sweep the scheduler sends."""

from __future__ import annotations

from typing import Any

import dramatiq

from jobs import runtime
from jobs.maintenance import SWEEP_TIME_LIMIT
from namaskah.domain.maintenance.worker import run_tick
from namaskah.domain.subscriptions.jobs import SweepSubscriptions
from namaskah.domain.subscriptions.worker import sweep_subscriptions


@dramatiq.actor(
    actor_name=SweepSubscriptions.actor_name,
    queue_name=SweepSubscriptions.queue_name,
    max_retries=0,  # the next tick is the retry (run_tick logs and counts a failure)
    time_limit=SWEEP_TIME_LIMIT,
)
async def sweep(payload: dict[str, Any]) -> None:
    await run_tick(SweepSubscriptions.decode(payload), lambda: sweep_subscriptions(runtime.relay(), runtime.settings))
