"""Paystack's webhooks as they arrive: the signature, the source address, the event's unique key, and storing each
event once with its job requested in the same transaction."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import uuid
from functools import cache
from typing import Annotated, Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Table, select, update
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import column_values, rowcount
from namaskah.db.service import Service
from namaskah.db.upsert import insert_or_skip_into
from namaskah.domain.billing.errors import BadSignature, MalformedEvent, SourceNotAllowed
from namaskah.domain.billing.jobs import ProcessPaystackEvent
from namaskah.domain.billing.models import EventStatus, PaystackEvent
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService

logger = get_logger(__name__)

SIGNATURE_HEADER = "x-paystack-signature"
KEY_MAX = 200
_EVENTS: Table = PaystackEvent.__table__  # type: ignore[assignment]
_E = PaystackEvent
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- signature --------------------------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """What Paystack sends in x-paystack-signature: the lowercase hex HMAC-SHA512 of the raw body, keyed with the
    secret key (the sandbox and the tests sign with this)."""
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """Raise BadSignature unless `header` signs exactly these bytes. Compared in constant time; hex is compared as
    lowercase, so spelling the same digest in capitals tells a forger nothing either."""
    if not header:
        raise BadSignature(f"The {SIGNATURE_HEADER} header is missing")
    if not hmac.compare_digest(header.strip().lower().encode(), sign(body, secret).encode()):
        raise BadSignature("The signature does not match the body")


# --- source address ---------------------------------------------------------------------------------------


@cache
def networks(text: str) -> tuple[Network, ...]:
    """A comma-separated setting of addresses and networks (validated at start-up by the settings)."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip())


def _within(address: str, allowed: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in allowed)


def source_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str | None:
    """The sender's address: the connection's peer, unless the peer is a trusted proxy; then the right-most
    X-Forwarded-For entry that is not itself a trusted proxy (entries left of it are whatever the client wrote)."""
    if peer is None or not forwarded_for or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer


def as_ip(address: str | None) -> str | None:
    """The address in its canonical spelling, or None for one that is not an IP (a proxy's odd header)."""
    try:
        return None if address is None else str(ipaddress.ip_address(address))
    except ValueError:
        return None


def check_source(address: str | None, allowed: tuple[Network, ...]) -> None:
    """With an allow-list set, only its addresses may deliver (403, nothing stored); without one, any may."""
    if allowed and (address is None or not _within(address, allowed)):
        logger.warning("paystack_webhook_source_refused", source_ip=address)
        raise SourceNotAllowed("This address is not an allowed Paystack source")


# --- the event and its key --------------------------------------------------------------------------------


class Envelope(msgspec.Struct, frozen=True):
    """What every Paystack event has: its type and its data; the rest of the body is stored as it came."""

    event: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    data: dict[str, Any]


_decoder = msgspec.json.Decoder(Envelope)


def parse(body: bytes) -> tuple[Envelope, dict[str, Any]]:
    """The envelope and the whole payload (what is stored); 400 for a body that is not a Paystack event."""
    try:
        envelope = _decoder.decode(body)
        payload: dict[str, Any] = msgspec.json.decode(body)
    except msgspec.MsgspecError as exc:
        raise MalformedEvent(f"Not a Paystack event: {exc}") from None
    return envelope, payload


def event_key(envelope: Envelope, body: bytes) -> str:
    """The event's identity. Paystack events carry no id of their own, and a redelivery may differ in fields that
    change over time (a log, a timestamp), so the body's hash would not do. What one event is about does not
    change: its type plus the id of its subject (the transaction of a charge.success, the refund of a refund.*,
    the dispute of a charge.dispute.*), else the subject's reference; only an event with neither falls back to
    the body's SHA-256, which is then the best identity there is."""
    data = envelope.data
    for field, tag in (("id", "id"), ("reference", "ref"), ("refund_reference", "ref")):
        value = data.get(field)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
            key = f"{envelope.event}:{tag}:{str(value).strip()}"
            break
    else:
        key = f"{envelope.event}:sha256:{hashlib.sha256(body).hexdigest()}"
    if len(key) > KEY_MAX:  # an absurdly long id: still one key per id
        key = f"{envelope.event[:100]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


# --- storing ----------------------------------------------------------------------------------------------


class PaystackEventRepository(SQLAlchemyAsyncRepository[PaystackEvent]):
    model_type = PaystackEvent


class PaystackEventService(Service[PaystackEvent, PaystackEventRepository]):
    """Joins the caller's transaction: the event's job is requested through the outbox, so none runs for an event
    whose row did not commit."""

    repository_type = PaystackEventRepository

    async def receive(self, envelope: Envelope, payload: dict[str, Any], key: str, source_ip: str | None) -> bool:
        """Store the event and request its job: True when new, False for one stored before (a redelivery, even one
        concurrent with the first: it waits on the unique index, then inserts nothing and requests no job)."""
        row = PaystackEvent(
            id=uuid7(),
            event_key=key,
            event_type=envelope.event,
            payload=payload,
            status=EventStatus.PENDING.value,
            detail=None,
            source_ip=source_ip,
            received_at=utcnow(),
            processed_at=None,
        )
        # One statement compiled once: this is the whole cost of an acknowledgement besides the commit.
        inserted = await self._session.execute(insert_or_skip_into(_EVENTS, ("event_key",)), column_values(row))
        if not rowcount(inserted):
            logger.info("paystack_event_duplicate", event_key=key, event_type=envelope.event)
            return False
        await OutboxService(session=self._session).request(ProcessPaystackEvent(event_id=row.id))
        logger.info("paystack_event_received", event_key=key, event_type=envelope.event)
        return True

    async def pending(self, event_id: uuid.UUID) -> PaystackEvent | None:
        """The event while unsettled, locked to the end of the transaction: concurrent runs of its job take turns,
        and the later one finds it settled."""
        query = (
            select(_E)
            .where(_E.id == event_id, _E.status == EventStatus.PENDING.value)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self._session.scalars(query)).one_or_none()

    async def settle(self, event: PaystackEvent, status: EventStatus, detail: str) -> None:
        await self._session.execute(
            update(_E)
            .where(_E.id == event.id, _E.status == EventStatus.PENDING.value)
            .values(status=status.value, detail=detail[:200], processed_at=utcnow())
        )
        logger.info("paystack_event_settled", event_key=event.event_key, status=status.value, detail=detail[:200])
