"""What the delivery job does, apart from Dramatiq: claim the delivery, send it outside any transaction, record the
attempt. The partner's server is called between two short transactions, never inside one."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.domain.webhooks.deliveries import DeliveryRules, WebhookDeliveryService
from namaskah.domain.webhooks.jobs import DeliverWebhook
from namaskah.domain.webhooks.sender import WebhookSender

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def deliver(
    transaction: Transaction,
    sender: WebhookSender,
    job: DeliverWebhook,
    rules: DeliveryRules,
    *,
    clock: Callable[[], datetime] = utcnow,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """One attempt; the seconds until the next one when the attempt failed and the schedule goes on (the caller
    sends the job again with that delay), else None. Safe to run twice: a duplicate finds the delivery claimed."""
    async with transaction() as session:
        claim = await WebhookDeliveryService(session=session, rules=rules).claim(job.delivery_id, clock())
    if claim is None:
        return None
    result = await sender.send(
        claim.url, webhook_id=claim.webhook_id, body=claim.body, secret=claim.secret, now=clock()
    )
    async with transaction() as session:
        service = WebhookDeliveryService(session=session, rules=rules)
        next_at = await service.finish(claim, result, clock(), rand())
    return None if next_at is None else max(0.0, (next_at - clock()).total_seconds())
