"""Rental actors: rent the number, poll its SMS while it is active, extend and release it at the provider."""

from __future__ import annotations

from typing import Any

import dramatiq

from jobs import runtime
from jobs.verifications import ACQUIRE_RETRIES, DATABASE_ONLY, PROVIDER_CALL, provider
from namaskah.domain.rentals import worker
from namaskah.domain.rentals.jobs import AcquireRental, ExtendAtProvider, PollRentalMessages, ReleaseAtProvider

GAVE_UP = "rentals.acquire_gave_up"


# Past its retries (the provider stayed unavailable) the rental must not stay pending with the money taken.
@dramatiq.actor(
    actor_name=AcquireRental.actor_name,
    queue_name=AcquireRental.queue_name,
    on_retry_exhausted=GAVE_UP,
    time_limit=PROVIDER_CALL,
    **ACQUIRE_RETRIES,
)
async def acquire(payload: dict[str, Any]) -> None:
    await worker.acquire(runtime.transaction, provider(), AcquireRental.decode(payload))


@dramatiq.actor(actor_name=GAVE_UP, queue_name=AcquireRental.queue_name, time_limit=DATABASE_ONLY, **ACQUIRE_RETRIES)
async def acquire_gave_up(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    await worker.give_up(runtime.transaction, AcquireRental.decode(message["args"][0]))


# A rental lasts days and a failed poll ends its chain: keep retrying through an outage of an hour or so.
@dramatiq.actor(
    actor_name=PollRentalMessages.actor_name,
    queue_name=PollRentalMessages.queue_name,
    max_retries=20,
    min_backoff=5_000,
    max_backoff=300_000,
    time_limit=PROVIDER_CALL,
)
async def poll(payload: dict[str, Any]) -> None:
    if await worker.poll(runtime.transaction, provider(), PollRentalMessages.decode(payload)):
        # Sent only after the poll's transaction committed; a duplicate poll stores no message twice.
        poll.send_with_options(args=(payload,), delay=int(runtime.settings.rental_poll_interval * 1000))


# No retries: extending twice after an unclear failure would pay the provider twice (the worker logs failures).
@dramatiq.actor(
    actor_name=ExtendAtProvider.actor_name,
    queue_name=ExtendAtProvider.queue_name,
    max_retries=0,
    time_limit=PROVIDER_CALL,
)
async def extend_at_provider(payload: dict[str, Any]) -> None:
    await worker.extend_at_provider(runtime.transaction, provider(), ExtendAtProvider.decode(payload))


@dramatiq.actor(
    actor_name=ReleaseAtProvider.actor_name,
    queue_name=ReleaseAtProvider.queue_name,
    max_retries=10,
    min_backoff=5_000,
    max_backoff=600_000,
    time_limit=PROVIDER_CALL,
)
async def release_at_provider(payload: dict[str, Any]) -> None:
    await worker.release_at_provider(provider(), ReleaseAtProvider.decode(payload))
