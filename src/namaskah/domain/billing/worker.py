"""What the billing jobs do, apart from Dramatiq: apply one stored Paystack event in one transaction, idempotently
(a run that finds the event settled stops; every booking has its own ledger reference); fail top-ups stuck
initializing."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.domain.billing.events import PaystackEventService
from namaskah.domain.billing.jobs import ProcessPaystackEvent
from namaskah.domain.billing.models import EventStatus, FlagKind, PaystackEvent
from namaskah.domain.billing.paystack_schemas import Transaction
from namaskah.domain.billing.service import Settled, TopupService
from namaskah.lib.logging import get_logger
from namaskah.settings import Settings

logger = get_logger(__name__)

UnitOfWork = Callable[[], AbstractAsyncContextManager[AsyncSession]]
Amount = int | str  # Paystack sends some amounts as strings ("10000"), notably in refund events
_DIGITS = re.compile(r"[0-9]{1,18}")


class RefundData(msgspec.Struct, frozen=True, kw_only=True):
    """refund.processed: `id` is the refund's; the refunded transaction is named by its reference."""

    id: int | str
    amount: Amount
    currency: str
    transaction_reference: str | None = None
    transaction: dict[str, Any] | None = None

    @property
    def reference(self) -> str | None:
        nested = (self.transaction or {}).get("reference")
        return self.transaction_reference or (nested if isinstance(nested, str) else None)


class DisputedTransaction(msgspec.Struct, frozen=True, kw_only=True):
    reference: str
    amount: Amount | None = None


class DisputeData(msgspec.Struct, frozen=True, kw_only=True):
    """charge.dispute.create / .resolve: `id` is the dispute's; `refund_amount` what the customer claims."""

    id: int | str
    transaction: DisputedTransaction
    refund_amount: Amount | None = None
    resolution: str | None = None


def minor_units(value: Amount) -> int:
    """An amount in the subunit, sent as a number or as a string of digits; anything else is refused."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"negative amount {value}")
        return value
    if not _DIGITS.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a whole number of minor units")
    return int(value.strip())


async def process(transaction: UnitOfWork, job: ProcessPaystackEvent, settings: Settings) -> EventStatus | None:
    """Apply the event and settle it in the same transaction; None when another run settled it first."""
    async with transaction() as session:
        events = PaystackEventService(session=session)
        event = await events.pending(job.event_id)
        if event is None:
            return None
        topups = TopupService(session=session, settings=settings)
        try:
            status, detail = await _apply(topups, event)
        except (msgspec.ValidationError, ValueError) as exc:
            detail = f"{event.event_type} data unreadable: {exc}"
            await topups.flag(FlagKind.BAD_EVENT, f"bad_event:{event.event_key}", detail)
            status = EventStatus.FLAGGED
        await events.settle(event, status, detail)
        return status


async def _apply(topups: TopupService, event: PaystackEvent) -> tuple[EventStatus, str]:
    data = event.payload.get("data") or {}
    kind = event.event_type
    if kind == "charge.success":
        report = msgspec.convert(data, Transaction)
        settled = await topups.settle(report, via="webhook")
        outcome = {
            Settled.CREDITED: EventStatus.PROCESSED,
            Settled.ALREADY: EventStatus.PROCESSED,
            Settled.MISMATCH: EventStatus.FLAGGED,
        }.get(settled, EventStatus.IGNORED)
        return outcome, f"charge of {report.reference}: {settled.value}"
    if kind == "refund.processed":
        refund = msgspec.convert(data, RefundData)
        if refund.reference is None:
            raise ValueError("the refund names no transaction reference")
        booked = await topups.refund(
            refund_id=str(refund.id),
            reference=refund.reference,
            amount=minor_units(refund.amount),
            currency=refund.currency,
        )
        return _booked(booked, f"refund {refund.id} of {refund.reference}")
    if kind in ("charge.dispute.create", "charge.dispute.resolve"):
        dispute = msgspec.convert(data, DisputeData)
        claimed = dispute.refund_amount if dispute.refund_amount is not None else dispute.transaction.amount
        reference, dispute_id = dispute.transaction.reference, str(dispute.id)
        if kind == "charge.dispute.create":
            amount = None if claimed is None else minor_units(claimed)
            booked = await topups.dispute_opened(dispute_id=dispute_id, reference=reference, amount=amount)
        else:
            booked = await topups.dispute_resolved(
                dispute_id=dispute_id,
                reference=reference,
                resolution=dispute.resolution,
                amount=None if claimed is None else minor_units(claimed),
            )
        return _booked(booked, f"{kind} {dispute_id} of {reference}")
    # Stored and acknowledged all the same: an operator can read it, and handling it later needs no redelivery.
    logger.info("paystack_event_unhandled", event_type=kind, event_key=event.event_key)
    return EventStatus.IGNORED, f"{kind} is not an event we act on"


def _booked(booked: bool, what: str) -> tuple[EventStatus, str]:
    return (EventStatus.PROCESSED, f"{what}: booked") if booked else (EventStatus.FLAGGED, f"{what}: flagged")


async def sweep_stuck_topups(transaction: UnitOfWork, settings: Settings, *, now: datetime | None = None) -> int:
    """Fail every top-up `initializing` past TOPUP_INITIALIZING_TIMEOUT, in one short transaction; answers how many."""
    async with transaction() as session:
        failed = await TopupService(session=session, settings=settings).fail_stuck(now or utcnow())
    return len(failed)
