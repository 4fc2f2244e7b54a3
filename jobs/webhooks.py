"""Webhook actors: one attempt at one delivery, sent again with the schedule's delay while it keeps failing; the
scheduler's sweep of deliveries left pending past their time."""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq

from jobs import runtime
from namaskah.domain.maintenance.worker import run_tick
from namaskah.domain.webhooks import worker
from namaskah.domain.webhooks.attempts import DeliveryRules
from namaskah.domain.webhooks.jobs import DeliverWebhook, SweepWebhookDeliveries
from namaskah.domain.webhooks.sender import WebhookSender, build_client, url_policy
from namaskah.domain.webhooks.sweeper import sweep_due_deliveries
from namaskah.lib.logging import get_logger

logger = get_logger(__name__)
_senders: dict[int, WebhookSender] = {}


def sender() -> WebhookSender:
    """One pooled client per event loop, like the runtime's engines: its connections belong to that loop."""
    key = id(asyncio.get_running_loop())
    if key not in _senders:
        settings = runtime.settings
        _senders[key] = WebhookSender(build_client(settings), url_policy(settings), timeout=settings.webhook_timeout)
    return _senders[key]


# Failed attempts are retried by our schedule, not Dramatiq's; Dramatiq's retries only cover an exception of
# ours (the database restarting), which the claim's lease makes safe to run again.
@dramatiq.actor(actor_name=DeliverWebhook.actor_name, queue_name=DeliverWebhook.queue_name, max_retries=3)
async def deliver(payload: dict[str, Any]) -> None:
    rules = DeliveryRules.from_settings(runtime.settings)
    delay = await worker.deliver(runtime.transaction, sender(), DeliverWebhook.decode(payload), rules)
    if delay is None:
        return
    try:
        deliver.send_with_options(args=(payload,), delay=int(delay * 1000))
    except Exception as exc:  # Redis away: the delivery stays pending and due, for sweep_due_deliveries
        logger.warning("webhook_retry_not_scheduled", delivery_id=payload.get("delivery_id"), error=type(exc).__name__)


# Like the maintenance sweeps: no Dramatiq retry (run_tick logs a failure; the next tick sweeps again).
@dramatiq.actor(
    actor_name=SweepWebhookDeliveries.actor_name,
    queue_name=SweepWebhookDeliveries.queue_name,
    max_retries=0,
    time_limit=120_000,
)
async def sweep_deliveries(payload: dict[str, Any]) -> None:
    await run_tick(SweepWebhookDeliveries.decode(payload), lambda: sweep_due_deliveries(runtime.relay()))
