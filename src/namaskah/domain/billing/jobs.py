"""The background jobs of billing: apply one stored Paystack event; the sandbox's delivery of its webhook; the
periodic sweep of top-ups stuck initializing."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job
from namaskah.lib.scheduler import Tick


class ProcessPaystackEvent(Job, frozen=True, kw_only=True):
    actor_name = "billing.process_paystack_event"
    queue_name = "default"

    event_id: uuid.UUID  # our paystack_events row


class DeliverSandboxEvent(Job, frozen=True, kw_only=True):
    """Dev mode: what Paystack's servers do after a payment, sending the signed charge.success to our receiver."""

    actor_name = "billing.deliver_sandbox_event"
    queue_name = "default"

    reference: str


class SweepStuckTopups(Tick, frozen=True, kw_only=True):
    actor_name = "billing.sweep_stuck_topups"
