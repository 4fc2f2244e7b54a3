"""What the provider event job does, apart from Dramatiq: idempotent (a run finds a settled event and stops), one
short transaction, and no call to the provider: a pushed SMS is stored as pushed, at once, and a poll that lists it
later under the provider's id recognises it (`lib.received_sms`), so the code reaches the customer without a
round trip to TextVerified."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.provider_events.jobs import ProcessProviderEvent
from namaskah.domain.provider_events.schemas import SmsReceived, typed_data
from namaskah.domain.provider_events.service import ProviderEventService
from namaskah.lib.logging import get_logger
from namaskah.providers.base import ProviderMessage
from namaskah.providers.textverified import message_of
from namaskah.providers.textverified_schemas import Sms

logger = get_logger(__name__)

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class Outcome(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    UNMATCHED = "unmatched"
    WAITING = "waiting"  # no reservation of ours matched yet: the caller runs the job again later
    SETTLED_BEFORE = "settled_before"  # another run (a redelivery of the job) got there first


async def process(transaction: Transaction, job: ProcessProviderEvent, *, match_attempts: int) -> Outcome:
    """Apply the stored event: an SMS to the verification or rental holding its reservation (looked for again
    while `match_attempts` allows, for a push that overtook our purchase), any other event settled as ignored."""
    async with transaction() as session:
        events = ProviderEventService(session=session)
        event = await events.pending(job.event_id)
        if event is None:
            return Outcome.SETTLED_BEFORE
        data = typed_data(event.event_type, event.payload["data"])
        if not isinstance(data, SmsReceived):
            await events.settle_other(event, data)
            return Outcome.IGNORED
        reservation = None if data.reservation_id is None else await events.reservation(data.reservation_id)
        if reservation is None:
            waiting = await events.look_again(event, data.reservation_id, match_attempts)
            return Outcome.WAITING if waiting else Outcome.UNMATCHED
        await events.record_sms(event, reservation, pushed_message(data))
    return Outcome.PROCESSED


def pushed_message(sms: SmsReceived) -> ProviderMessage:
    """The pushed SMS mapped as the TextVerified adapter maps a listed one. The push carries no id of the SMS, so
    it is keyed by its content: the same SMS in two events (the vendor re-sending it) is one message."""
    parts = (sms.reservation_id or "", sms.created_at.isoformat(), sms.from_ or "", sms.to, sms.sms_content or "")
    key = "push-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:59]  # 64 characters, the column's
    listed = Sms(
        id=key,
        to=sms.to,
        created_at=sms.created_at,
        from_=sms.from_,
        sms_content=sms.sms_content,
        parsed_code=sms.parsed_code,
    )
    return message_of(listed)
