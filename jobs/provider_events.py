"""Provider event actor: apply one pushed event, looking again later while its reservation is not ours yet."""

from __future__ import annotations

from typing import Any

import dramatiq

from jobs import runtime
from namaskah.domain.provider_events import worker
from namaskah.domain.provider_events.jobs import ProcessProviderEvent


@dramatiq.actor(actor_name=ProcessProviderEvent.actor_name, queue_name=ProcessProviderEvent.queue_name, max_retries=10)
async def process(payload: dict[str, Any]) -> None:
    settings = runtime.settings
    job = ProcessProviderEvent.decode(payload)
    outcome = await worker.process(runtime.transaction, job, match_attempts=settings.provider_event_match_attempts)
    if outcome is worker.Outcome.WAITING:
        # Sent after the look was counted and committed; the event's row bounds how often this happens.
        process.send_with_options(args=(payload,), delay=int(settings.provider_event_match_interval * 1000))
