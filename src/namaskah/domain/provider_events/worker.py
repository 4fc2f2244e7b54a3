"""What the provider event job does, apart from Dramatiq: idempotent (a run finds a settled event and stops), and
the provider is called between two short transactions, never inside one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.provider_events.jobs import ProcessProviderEvent
from namaskah.domain.provider_events.schemas import SmsReceived, typed_data
from namaskah.domain.provider_events.service import ProviderEventService, Reservation
from namaskah.lib.logging import get_logger
from namaskah.providers.base import ProviderMessage, SmsProvider
from namaskah.providers.errors import ProviderError
from namaskah.providers.textverified import TextVerifiedProvider, message_of
from namaskah.providers.textverified_schemas import Sms

logger = get_logger(__name__)

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]
# A listed SMS is the pushed one when its text is the same and its time this close (the two documents may round
# the same instant differently).
SAME_SMS_WITHIN = timedelta(seconds=1)


class Outcome(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    UNMATCHED = "unmatched"
    WAITING = "waiting"  # no reservation of ours matched yet: the caller runs the job again later
    SETTLED_BEFORE = "settled_before"  # another run (a redelivery of the job) got there first


async def process(
    transaction: Transaction, provider: SmsProvider, job: ProcessProviderEvent, *, match_attempts: int
) -> Outcome:
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
    message = await as_polled(provider, reservation, pushed_message(data))
    async with transaction() as session:
        events = ProviderEventService(session=session)
        event = await events.pending(job.event_id)
        if event is None:
            return Outcome.SETTLED_BEFORE
        await events.record_sms(event, reservation, message)
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


async def as_polled(provider: SmsProvider, reservation: Reservation, pushed: ProviderMessage) -> ProviderMessage:
    """The pushed SMS as polling stores it, under the provider's id for it, found in the reservation's SMS list:
    then a poll that sees it again stores nothing twice. Only TextVerified's list holds a TextVerified SMS; without
    it (another provider sold the reservation, the list failed or does not show it) the pushed one is stored as it
    is, and a later poll of a rental may store it once more, under the listed id (logged)."""
    if not reservation.provider == provider.name == TextVerifiedProvider.name:
        return pushed
    fields = {"reservation_id": reservation.provider_id, "reservation": str(reservation)}
    try:
        listed = await provider.messages(reservation.provider_id, reservation.kind)
    except ProviderError as exc:
        logger.warning("provider_event_sms_list_failed", error=exc.code, **fields)
        return pushed
    same = [m for m in listed if m.text == pushed.text and abs(m.received_at - pushed.received_at) <= SAME_SMS_WITHIN]
    if not same:
        logger.warning("provider_event_sms_not_listed", **fields)
        return pushed
    return min(same, key=lambda m: abs(m.received_at - pushed.received_at))
