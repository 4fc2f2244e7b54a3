"""What the delivery job does, apart from Dramatiq: claim the delivery, send it outside any transaction, record the
attempt. The partner's server is called between two short transactions, never inside one."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.domain.webhooks.attempts import DeliveryRules, WebhookAttemptService
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
    """One attempt; the seconds until the job should run again (the attempt failed and the schedule goes on, or
    another attempt holds the delivery), else None: the caller sends the job again with that delay. Safe to run
    twice: a duplicate finds the delivery held and comes back when the lease ends, in case the holder was a worker
    that died mid-attempt (if the holder finished, it then sends nothing)."""
    async with transaction() as session:
        service = WebhookAttemptService(session=session, rules=rules)
        claim = await service.claim(job.delivery_id, clock())
        held_until = None if claim is not None else await service.held_until(job.delivery_id, clock())
    if claim is None:
        return None if held_until is None else max(0.0, (held_until - clock()).total_seconds())
    result = await sender.send(
        claim.url, webhook_id=claim.webhook_id, body=claim.body, secret=claim.secret, now=clock()
    )
    async with transaction() as session:
        service = WebhookAttemptService(session=session, rules=rules)
        next_at = await service.finish(claim, result, clock(), rand())
    return None if next_at is None else max(0.0, (next_at - clock()).total_seconds())
