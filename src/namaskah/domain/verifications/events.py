"""The stream of `GET /v1/verifications/{id}/events`: one Server-Sent Event per status change or message.

Each stream watches its row with a short read every VERIFICATION_EVENTS_INTERVAL seconds, so a change made by a
worker, another API process or the simulator reaches every stream, in every process, with no pub/sub to lose.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
from litestar.response import ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.db.base import utcnow
from namaskah.domain.verifications.models import OPEN_STATUSES
from namaskah.domain.verifications.schemas import MessageRead, VerificationRead
from namaskah.domain.verifications.service import VerificationService

# A comment line this often keeps proxies from closing a quiet stream.
KEEP_ALIVE_SECONDS = 15.0
# A stream outlives its verification's window by this much at most, even if nothing expired it.
GRACE = timedelta(minutes=2)


async def follow(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, verification_id: uuid.UUID, *, interval: float
) -> AsyncIterator[ServerSentEventMessage]:
    """`status` events (the whole verification) when its status changes, `message` events for each new SMS;
    the stream ends after the status that ends the verification."""
    status, seen, quiet_since = "", 0, time.monotonic()
    while True:
        async with sessions() as session:
            verification, messages = await VerificationService(session=session).snapshot(user_id, verification_id)
        current = VerificationRead.of(verification, messages)
        for message in messages[seen:]:
            yield _event("message", MessageRead(text=message.text, code=message.code, received_at=message.received_at))
        if current.status != status or len(messages) != seen:
            quiet_since = time.monotonic()
        if current.status != status:
            yield _event("status", current)
        status, seen = current.status, len(messages)
        if status not in OPEN_STATUSES or utcnow() > verification.expires_at + GRACE:
            return
        if time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield ServerSentEventMessage(comment="keep-alive")
        await asyncio.sleep(interval)


def _event(kind: str, body: msgspec.Struct) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=kind, data=msgspec.json.encode(body).decode())
