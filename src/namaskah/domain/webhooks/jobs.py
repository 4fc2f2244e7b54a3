"""The background job of a webhook: one attempt at one delivery."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job


class DeliverWebhook(Job, frozen=True, kw_only=True):
    actor_name = "webhooks.deliver"
    # A queue of its own: partners' slow servers show in its backlog, not in the verifications'.
    queue_name = "webhooks"

    delivery_id: uuid.UUID
