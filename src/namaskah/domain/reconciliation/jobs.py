"""Reconciliation's periodic job, sent by the scheduler (SCHEDULER_RECONCILIATION_INTERVAL)."""

from __future__ import annotations

from namaskah.lib.scheduler import Tick


class ReconcilePaystack(Tick, frozen=True, kw_only=True):
    actor_name = "reconciliation.paystack"
