"""The background jobs of a rental: rent the number, poll its SMS, extend and release it at the provider."""

from __future__ import annotations

import uuid
from datetime import datetime

from namaskah.lib.outbox.jobs import Job


class AcquireRental(Job, frozen=True, kw_only=True):
    actor_name = "rentals.acquire"
    queue_name = "default"

    rental_id: uuid.UUID


class PollRentalMessages(Job, frozen=True, kw_only=True):
    actor_name = "rentals.poll"
    queue_name = "default"

    rental_id: uuid.UUID


class ExtendAtProvider(Job, frozen=True, kw_only=True):
    actor_name = "rentals.extend_at_provider"
    queue_name = "default"

    rental_id: uuid.UUID
    provider_id: str
    days: int
    # Our end after this extension, to compare with the provider's; None in jobs requested before it was sent.
    ends_at: datetime | None = None


class ReleaseAtProvider(Job, frozen=True, kw_only=True):
    actor_name = "rentals.release_at_provider"
    queue_name = "default"

    rental_id: uuid.UUID
    provider_id: str
