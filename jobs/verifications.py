"""Verification actors: buy the number, poll its SMS until it completes or expires, give a number back."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import dramatiq

from jobs import runtime
from namaskah.domain.verifications import worker
from namaskah.domain.verifications.jobs import AcquireNumber, CancelAtProvider, PollMessages
from namaskah.providers.base import SmsProvider
from namaskah.providers.factory import build_provider

_providers: dict[int, SmsProvider] = {}


def provider() -> SmsProvider:
    """One provider per event loop, like the runtime's engines: its pooled connections belong to that loop."""
    key = id(asyncio.get_running_loop())
    if key not in _providers:
        _providers[key] = build_provider(runtime.settings, runtime.relay().sessions)
    return _providers[key]


GAVE_UP = "verifications.acquire_gave_up"


class RetryPolicy(TypedDict):
    """Dramatiq's retry options (backoff in ms), shared by the actors of one kind of call."""

    max_retries: int
    min_backoff: int
    max_backoff: int


# Time limits (ms). A provider call may spend its client's retries and timeouts (TEXTVERIFIED_*), about two minutes.
PROVIDER_CALL = 180_000
DATABASE_ONLY = 60_000
# Retries while the provider is unavailable back off from 2 s to a minute: 10 of them take 4 to 7 minutes, inside a
# verification's window and a rental's pending timeout, so the purchase is still worth buying when one succeeds.
ACQUIRE_RETRIES = RetryPolicy(max_retries=10, min_backoff=2_000, max_backoff=60_000)


# Past its retries (the provider stayed unavailable) the purchase must not stay pending with the money taken.
@dramatiq.actor(
    actor_name=AcquireNumber.actor_name,
    queue_name=AcquireNumber.queue_name,
    on_retry_exhausted=GAVE_UP,
    time_limit=PROVIDER_CALL,
    **ACQUIRE_RETRIES,
)
async def acquire(payload: dict[str, Any]) -> None:
    await worker.acquire(runtime.transaction, provider(), AcquireNumber.decode(payload))


@dramatiq.actor(actor_name=GAVE_UP, queue_name=AcquireNumber.queue_name, time_limit=DATABASE_ONLY, **ACQUIRE_RETRIES)
async def acquire_gave_up(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    await worker.give_up(runtime.transaction, AcquireNumber.decode(message["args"][0]))


# A poll that keeps failing stops the chain; the expiry sweep still refunds the verification at the window's end.
@dramatiq.actor(
    actor_name=PollMessages.actor_name,
    queue_name=PollMessages.queue_name,
    max_retries=10,
    min_backoff=5_000,
    max_backoff=60_000,
    time_limit=PROVIDER_CALL,
)
async def poll(payload: dict[str, Any]) -> None:
    if await worker.poll(runtime.transaction, provider(), PollMessages.decode(payload)):
        # Sent only after the poll's transaction committed; a duplicate poll stores no message twice.
        delay = int(runtime.settings.verification_poll_interval * 1000)
        poll.send_with_options(args=(payload,), delay=delay)


@dramatiq.actor(
    actor_name=CancelAtProvider.actor_name,
    queue_name=CancelAtProvider.queue_name,
    max_retries=10,
    min_backoff=5_000,
    max_backoff=600_000,
    time_limit=PROVIDER_CALL,
)
async def cancel_at_provider(payload: dict[str, Any]) -> None:
    await worker.cancel_at_provider(provider(), CancelAtProvider.decode(payload))
