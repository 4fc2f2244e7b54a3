"""The background job of a provider's push: apply one stored event."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job


class ProcessProviderEvent(Job, frozen=True, kw_only=True):
    actor_name = "provider_events.process"
    # A queue of its own, like the webhooks': a pushed code waits behind no other job, and a worker started with
    # `--queues provider_events,webhooks` can poll these two often (WORKER_IDLE_POLL) without the others.
    queue_name = "provider_events"

    event_id: uuid.UUID  # our provider_events row, not the vendor's id
