"""Which SMS reported by the provider are new to a verification or a rental. One SMS may reach us twice under two
ids: pushed (keyed by its content) and listed by a poll (the provider's id); it is the same SMS when the text is the
same and the times this close (the two documents may round an instant differently)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from namaskah.providers.base import ProviderMessage

SAME_SMS_WITHIN = timedelta(seconds=1)
StoredMessage = tuple[str, str, datetime]  # (provider_message_id, text, received_at) of a message we keep


def unseen(messages: Sequence[ProviderMessage], stored: Sequence[StoredMessage]) -> list[ProviderMessage]:
    """The messages not stored yet, neither under their id nor as the same SMS under another id; each once."""
    kept: list[StoredMessage] = list(stored)
    new: list[ProviderMessage] = []
    for message in messages:
        if any(
            key == message.provider_id
            or (text == message.text and abs(received_at - message.received_at) <= SAME_SMS_WITHIN)
            for key, text, received_at in kept
        ):
            continue
        new.append(message)
        kept.append((message.provider_id, message.text, message.received_at))
    return new


async def new_messages(
    session: AsyncSession,
    model: Any,
    owner: InstrumentedAttribute[uuid.UUID],
    owner_id: uuid.UUID,
    messages: Sequence[ProviderMessage],
) -> list[ProviderMessage]:
    """`unseen` against the stored messages of one verification or rental (`model` has `provider_message_id`,
    `text` and `received_at`), reading only those that could match: the same ids, or the same texts received
    within the window."""
    if not messages:  # a poll that found nothing reads nothing
        return []
    times = [message.received_at for message in messages]
    near = model.received_at.between(min(times) - SAME_SMS_WITHIN, max(times) + SAME_SMS_WITHIN)
    twins = and_(near, model.text.in_(sorted({message.text[:1600] for message in messages})))
    ids = model.provider_message_id.in_([message.provider_id[:64] for message in messages])
    query = select(model.provider_message_id, model.text, model.received_at).where(owner == owner_id, or_(ids, twins))
    return unseen(messages, (await session.execute(query)).tuples().all())
