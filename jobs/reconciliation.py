"""Reconciliation actor: the daily comparison of Paystack's transactions with the ledger (it reports, never books)."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq

from jobs import runtime
from namaskah.domain.billing.deps import build_paystack
from namaskah.domain.billing.paystack import PaystackClient
from namaskah.domain.reconciliation.jobs import ReconcilePaystack
from namaskah.domain.reconciliation.worker import reconcile

_clients: dict[int, PaystackClient] = {}


def _paystack() -> PaystackClient:
    """One pooled client per event loop (its connections belong to that loop), built as the API builds its own."""
    key = id(asyncio.get_running_loop())
    if key not in _clients:
        relay = runtime.relay()
        _clients[key] = build_paystack(runtime.settings, relay.sessions)
    return _clients[key]


# Paystack down raises before anything is stored: retried with backoff, the same tick comparing the same window.
@dramatiq.actor(
    actor_name=ReconcilePaystack.actor_name,
    queue_name=ReconcilePaystack.queue_name,
    max_retries=5,
    min_backoff=60_000,
    max_backoff=1_800_000,
    time_limit=600_000,
)
async def reconcile_paystack(payload: dict[str, Any]) -> None:
    job = ReconcilePaystack.decode(payload)
    await reconcile(runtime.relay(), _paystack(), runtime.settings, now=job.sent_at)
