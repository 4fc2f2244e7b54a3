"""The background job of a provider's push: apply one stored event."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job


class ProcessProviderEvent(Job, frozen=True, kw_only=True):
    actor_name = "provider_events.process"
    queue_name = "default"

    event_id: uuid.UUID  # our provider_events row, not the vendor's id
