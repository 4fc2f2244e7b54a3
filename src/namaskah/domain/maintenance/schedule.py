"""The schedule: every periodic job `namaskah scheduler` sends, one entry each, intervals from settings."""

from __future__ import annotations

from namaskah.domain.billing.jobs import SweepStuckTopups
from namaskah.domain.maintenance.jobs import ExpireVerifications, SweepOutbox, SweepRentals
from namaskah.domain.reconciliation.jobs import ReconcilePaystack
from namaskah.domain.subscriptions.jobs import SweepSubscriptions
from namaskah.domain.webhooks.jobs import SweepWebhookDeliveries
from namaskah.lib.scheduler import PeriodicTask
from namaskah.settings import Settings


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The tasks to send; an interval of 0 leaves its task out."""
    schedule = [
        PeriodicTask(SweepOutbox, every=settings.scheduler_outbox_sweep_interval),
        PeriodicTask(ExpireVerifications, every=settings.scheduler_verification_expiry_interval),
        PeriodicTask(SweepRentals, every=settings.scheduler_rental_sweep_interval),
        # Deliveries whose retry message was lost (Redis flushed, a worker killed between attempt and re-send).
        PeriodicTask(SweepWebhookDeliveries, every=settings.scheduler_webhook_sweep_interval),
        # Subscriptions whose period ended: renewed, retried while past due, lapsed or ended.
        PeriodicTask(SweepSubscriptions, every=settings.scheduler_subscription_sweep_interval),
        # Paystack's transactions of the last days against the ledger (reported to operators, never booked).
        PeriodicTask(ReconcilePaystack, every=settings.scheduler_reconciliation_interval),
        # Top-ups whose Paystack initialize never answered (or whose process died): failed, a final state.
        PeriodicTask(SweepStuckTopups, every=settings.scheduler_topup_sweep_interval),
        # Data retention joins the same way when it exists.
    ]
    return [task for task in schedule if task.every > 0]
