"""Billing actors: apply one stored Paystack event; in dev mode, the sandbox's delivery of its signed webhook; the
sweep of top-ups stuck initializing."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq
import httpx

from jobs import runtime
from jobs.maintenance import SWEEP_TIME_LIMIT
from namaskah.domain.billing import sandbox, worker
from namaskah.domain.billing.jobs import DeliverSandboxEvent, ProcessPaystackEvent, SweepStuckTopups
from namaskah.domain.maintenance.worker import run_tick

_clients: dict[int, httpx.AsyncClient] = {}


def _http() -> httpx.AsyncClient:
    """One client per event loop (its connections belong to that loop); the sandbox posts to our own receiver."""
    key = id(asyncio.get_running_loop())
    if key not in _clients:
        _clients[key] = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False)
    return _clients[key]


# Only the database can make this fail (an event's data problems are flagged, not raised): retry it a while.
@dramatiq.actor(
    actor_name=ProcessPaystackEvent.actor_name,
    queue_name=ProcessPaystackEvent.queue_name,
    max_retries=10,
    min_backoff=1_000,
    max_backoff=300_000,
    time_limit=60_000,
)
async def process_paystack_event(payload: dict[str, Any]) -> None:
    await worker.process(runtime.transaction, ProcessPaystackEvent.decode(payload), runtime.settings)


# Paystack retries an unanswered webhook for 72 hours; the sandbox retries for a few minutes (a dev server restarting).
@dramatiq.actor(
    actor_name=DeliverSandboxEvent.actor_name,
    queue_name=DeliverSandboxEvent.queue_name,
    max_retries=8,
    min_backoff=500,
    max_backoff=60_000,
    time_limit=60_000,
)
async def deliver_sandbox_event(payload: dict[str, Any]) -> None:
    await sandbox.deliver(runtime.transaction, runtime.settings, _http(), DeliverSandboxEvent.decode(payload))


@dramatiq.actor(
    actor_name=SweepStuckTopups.actor_name,
    queue_name=SweepStuckTopups.queue_name,
    max_retries=0,  # the next tick is the retry (run_tick logs and counts a failure)
    time_limit=SWEEP_TIME_LIMIT,
)
async def sweep_stuck_topups(payload: dict[str, Any]) -> None:
    await run_tick(
        SweepStuckTopups.decode(payload), lambda: worker.sweep_stuck_topups(runtime.transaction, runtime.settings)
    )
