"""The background jobs of a verification: buy the number, poll its SMS, cancel it at the provider."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job


class AcquireNumber(Job, frozen=True, kw_only=True):
    actor_name = "verifications.acquire"
    queue_name = "default"

    verification_id: uuid.UUID


class PollMessages(Job, frozen=True, kw_only=True):
    actor_name = "verifications.poll"
    queue_name = "default"

    verification_id: uuid.UUID


class CancelAtProvider(Job, frozen=True, kw_only=True):
    actor_name = "verifications.cancel_at_provider"
    queue_name = "default"

    verification_id: uuid.UUID
    provider_id: str
