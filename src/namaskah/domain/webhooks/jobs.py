"""The background jobs of webhooks: one attempt at one delivery, and the scheduler's sweep of overdue ones."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job
from namaskah.lib.scheduler import Tick


class DeliverWebhook(Job, frozen=True, kw_only=True):
    actor_name = "webhooks.deliver"
    # A queue of its own: partners' slow servers show in its backlog, not in the verifications'.
    queue_name = "webhooks"

    delivery_id: uuid.UUID


class SweepWebhookDeliveries(Tick, frozen=True, kw_only=True):
    """The scheduler's periodic request to run `sweeper.sweep_due_deliveries`."""

    actor_name = "webhooks.sweep_due_deliveries"
