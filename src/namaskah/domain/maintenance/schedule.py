"""The schedule: every periodic job `namaskah scheduler` sends, one entry each, intervals from settings."""

from __future__ import annotations

from namaskah.domain.maintenance.jobs import ExpireVerifications, SweepOutbox, SweepRentals
from namaskah.domain.subscriptions.jobs import SweepSubscriptions
from namaskah.lib.scheduler import PeriodicTask
from namaskah.settings import Settings


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The tasks to send; an interval of 0 leaves its task out."""
    schedule = [
        PeriodicTask(SweepOutbox, every=settings.scheduler_outbox_sweep_interval),
        PeriodicTask(ExpireVerifications, every=settings.scheduler_verification_expiry_interval),
        PeriodicTask(SweepRentals, every=settings.scheduler_rental_sweep_interval),
        # Partner webhooks plug in here: a Tick job (`SweepWebhookDeliveries`, actor "webhooks.sweep_due_deliveries"),
        # its actor in jobs/webhooks.py running `domain.webhooks.sweeper.sweep_due_deliveries(runtime.relay())`
        # through `domain.maintenance.worker.run_tick`, and a SCHEDULER_WEBHOOK_SWEEP_INTERVAL setting:
        #   PeriodicTask(SweepWebhookDeliveries, every=settings.scheduler_webhook_sweep_interval),
        # Billing (renewals, dunning) and data retention join the same way when they exist.
        PeriodicTask(SweepSubscriptions, every=settings.scheduler_subscription_sweep_interval),
    ]
    return [task for task in schedule if task.every > 0]
