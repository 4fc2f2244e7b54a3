"""Renting a number and every change after it: each a conditional UPDATE (so of two concurrent changes exactly one
wins) booked in the ledger under a reference of its own, so that a rerun charges or refunds nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import ColumnElement, Table, func, select, update
from sqlalchemy.exc import IntegrityError
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.service import Service
from namaskah.db.upsert import insert_or_skip_into
from namaskah.domain.catalog.pricing import ExchangeRates
from namaskah.domain.catalog.service import CatalogService
from namaskah.domain.rentals.errors import FeatureNotInTier, RentalNotActive, RentalNotFound, UnsupportedRentalDays
from namaskah.domain.rentals.jobs import AcquireRental, ExtendAtProvider, PollRentalMessages, ReleaseAtProvider
from namaskah.domain.rentals.models import Rental, RentalMessage, RentalStatus
from namaskah.domain.rentals.references import (
    DAY,
    charge_reference,
    extend_reference,
    refund_reference,
    release_reference,
    renew_reference,
    unused_days,
)
from namaskah.domain.rentals.schemas import RentalCreate
from namaskah.domain.tiers.models import TierPlan
from namaskah.domain.verifications.service import parse_code
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import InsufficientCredits, WalletService
from namaskah.domain.webhooks.events import rental_message_recorded, rentals_expiring
from namaskah.lib.idempotency import check_same_request
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService
from namaskah.lib.received_sms import new_messages
from namaskah.providers.base import ProviderMessage, ProviderNumber

logger = get_logger(__name__)

ACTIVE = RentalStatus.ACTIVE.value
PENDING = RentalStatus.PENDING.value
# The provider starts a rental's clock before we assign it (seconds; at most about RENTAL_PENDING_TIMEOUT): an end
# it reports within this much before ours is that drift. Shorter than a day less the renewal horizon, so taking it
# never makes a rental due for renewal again at once, and never mistakes a missing day for drift.
RECONCILE_WITHIN = timedelta(hours=1)
# A compare-and-set that lost to a concurrent change reads the row again this many times before answering 409.
_ATTEMPTS = 3

_R = Rental
_M = RentalMessage
_MESSAGES: Table = RentalMessage.__table__  # type: ignore[assignment]
_INSERT_MESSAGE_OR_SKIP = insert_or_skip_into(_MESSAGES, ("rental_id", "provider_message_id"))


class RentalRepository(SQLAlchemyAsyncRepository[Rental]):
    model_type = Rental


class RentalService(Service[Rental, RentalRepository]):
    """Joins the caller's transaction; jobs are requested through the outbox, so none leaves before the commit."""

    repository_type = RentalRepository

    def __init__(
        self, *, rates: ExchangeRates | None = None, rental_days: frozenset[int] = frozenset(), **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rates = rates
        self.rental_days = rental_days

    # --- the customer's requests --------------------------------------------------------------------------

    async def rent(
        self, user_id: uuid.UUID, tier: str, request: RentalCreate, idempotency_key: str | None = None
    ) -> Rental:
        """Charge the quote and request the number: the provider is called by the `rentals.acquire` job. A repeated
        key with the same body answers the first rental and charges nothing; another body is 422."""
        session, fingerprint = self._session, request.fingerprint()
        if idempotency_key is not None and (earlier := await self._by_key(user_id, idempotency_key)) is not None:
            return _replay(earlier, fingerprint)
        if not await session.scalar(select(TierPlan.rentals).where(TierPlan.name == tier)):
            raise FeatureNotInTier(f"The {tier!r} tier does not include rentals")
        self._check_days(request.days)
        if self.rates is None:
            raise RuntimeError("a rental needs the exchange rates")
        catalog = CatalogService(session=session, rates=self.rates)
        quote = await catalog.quote_rental(request.service, tier, request.days)
        now = utcnow()
        rental = Rental(
            id=uuid7(),
            user_id=user_id,
            service=quote.entry.slug,
            service_name=quote.entry.name,
            provider=quote.entry.provider,
            provider_service=quote.entry.provider_service,
            status=PENDING,
            days=request.days,
            price=quote.price,
            price_per_day=quote.price // request.days,
            currency=quote.currency,
            auto_renew=request.auto_renew,
            extensions=0,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            # Provisional: the paid period starts again when the number is assigned.
            starts_at=now,
            ends_at=now + request.days * DAY,
        )
        try:
            # A savepoint: a short wallet leaves no row behind even if the caller commits what else it did. The row
            # goes in first: a concurrent twin with the same key waits on the unique index until this transaction
            # ends, then fails here and answers with our rental instead of charging again.
            async with session.begin_nested():
                session.add(rental)
                await session.flush()
                if rental.price > 0:
                    await WalletService(session=session).debit(
                        user_id, rental.price, kind=EntryKind.RENTAL, reference=charge_reference(rental.id)
                    )
        except IntegrityError:
            winner = None if idempotency_key is None else await self._by_key(user_id, idempotency_key)
            if winner is None:
                raise
            return _replay(winner, fingerprint)
        await OutboxService(session=session).request(AcquireRental(rental_id=rental.id))
        logger.info("rental_created", rental_id=str(rental.id), price=rental.price, days=rental.days)
        return rental

    async def extend(self, user_id: uuid.UUID, rental_id: uuid.UUID, days: int) -> Rental:
        """Charge `days` at the rental's day rate and move its end; 409 `rental_not_active` unless active."""
        self._check_days(days)
        for _ in range(_ATTEMPTS):
            rental = await self.get_for(user_id, rental_id)
            if rental.status != ACTIVE or rental.provider_id is None:
                raise RentalNotActive("Only an active rental can be extended")
            n, charge, ends_at = rental.extensions + 1, rental.price_per_day * days, rental.ends_at + days * DAY
            async with self._session.begin_nested():
                moved = await self._set(
                    rental_id,
                    _R.status == ACTIVE,
                    _R.extensions == rental.extensions,
                    _R.ends_at == rental.ends_at,
                    extensions=n,
                    ends_at=ends_at,
                    price=rental.price + charge,
                )
                if moved and charge > 0:
                    await WalletService(session=self._session).debit(
                        user_id, charge, kind=EntryKind.RENTAL, reference=extend_reference(rental_id, n)
                    )
            if moved:
                job = ExtendAtProvider(rental_id=rental_id, provider_id=rental.provider_id, days=days, ends_at=ends_at)
                await OutboxService(session=self._session).request(job)
                logger.info("rental_extended", rental_id=str(rental_id), days=days, price=charge)
                return await self.get_for(user_id, rental_id)
        raise RentalNotActive("The rental changed during the extension; try again")

    async def release(self, user_id: uuid.UUID, rental_id: uuid.UUID, *, now: datetime | None = None) -> Rental:
        """End an active rental now, refunding its whole unused days at the rate paid; 409 unless active."""
        now = now or utcnow()
        rental = await self.get_for(user_id, rental_id)
        moved = await self._set(
            rental_id, _R.user_id == user_id, _R.status == ACTIVE, _R.ends_at == rental.ends_at, status="released"
        )
        if not moved:
            raise RentalNotActive("Only an active rental can be released")
        refund = rental.price_per_day * unused_days(rental.ends_at, now)
        if refund > 0:
            await WalletService(session=self._session).credit(
                user_id, refund, kind=EntryKind.RENTAL_REFUND, reference=release_reference(rental_id)
            )
        if rental.provider_id is not None:
            job = ReleaseAtProvider(rental_id=rental_id, provider_id=rental.provider_id)
            await OutboxService(session=self._session).request(job)
        logger.info("rental_released", rental_id=str(rental_id), refund=refund)
        return await self.get_for(user_id, rental_id)

    # --- reads --------------------------------------------------------------------------------------------

    async def get_for(self, user_id: uuid.UUID, rental_id: uuid.UUID) -> Rental:
        """The caller's rental; another user's is as missing as one that does not exist."""
        query = select(_R).where(_R.id == rental_id, _R.user_id == user_id).execution_options(populate_existing=True)
        found = (await self._session.scalars(query)).one_or_none()
        if found is None:
            raise RentalNotFound(f"No rental {rental_id}")
        return found

    async def list_for(self, user_id: uuid.UUID, *, limit: int, offset: int) -> tuple[Sequence[Rental], int]:
        """Newest first (ids are UUIDv7, so they sort by creation)."""
        rows = await self._session.scalars(
            select(_R).where(_R.user_id == user_id).order_by(_R.id.desc()).limit(limit).offset(offset)
        )
        total = await self._session.scalar(select(func.count()).select_from(_R).where(_R.user_id == user_id))
        return rows.all(), total or 0

    async def messages_for(
        self, user_id: uuid.UUID, rental_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[RentalMessage], int]:
        """The rental's messages, oldest first."""
        await self.get_for(user_id, rental_id)
        mine = _M.rental_id == rental_id
        rows = await self._session.scalars(
            select(_M).where(mine).order_by(_M.received_at, _M.id).limit(limit).offset(offset)
        )
        total = await self._session.scalar(select(func.count()).select_from(_M).where(mine))
        return rows.all(), total or 0

    async def load(self, rental_id: uuid.UUID) -> Rental | None:
        query = select(_R).where(_R.id == rental_id).execution_options(populate_existing=True)
        return (await self._session.scalars(query)).one_or_none()

    async def _by_key(self, user_id: uuid.UUID, key: str) -> Rental | None:
        query = (
            select(_R).where(_R.user_id == user_id, _R.idempotency_key == key).execution_options(populate_existing=True)
        )
        return (await self._session.scalars(query)).one_or_none()

    # --- what the jobs and the sweeper report -------------------------------------------------------------

    async def assign(self, rental_id: uuid.UUID, number: ProviderNumber, *, now: datetime | None = None) -> bool:
        """Record the rented number, start the paid period now and start polling; False when the rental is no
        longer pending (the caller then gives the number back)."""
        rental = await self.load(rental_id)
        if rental is None:
            return False
        now = now or utcnow()
        moved = await self._set(
            rental_id,
            _R.status == RentalStatus.PENDING.value,
            status=ACTIVE,
            provider_id=number.provider_id,
            phone_number=number.phone_number,
            starts_at=now,
            ends_at=now + rental.days * DAY,
        )
        if moved:
            await OutboxService(session=self._session).request(PollRentalMessages(rental_id=rental_id))
        return moved

    async def fail(self, rental_id: uuid.UUID, reason: str) -> bool:
        """The rental never started (the provider refused, the retries ran out, or it waited too long): failed and
        the whole price refunded, once, unless it is no longer pending."""
        row = (
            await self._session.execute(
                update(_R)
                .where(_R.id == rental_id, _R.status == RentalStatus.PENDING.value)
                .values(status=RentalStatus.FAILED.value, failure_reason=reason[:200], updated_at=utcnow())
                .returning(_R.user_id, _R.price)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is None:
            return False
        if row.price > 0:
            await WalletService(session=self._session).credit(
                row.user_id, row.price, kind=EntryKind.RENTAL_REFUND, reference=refund_reference(rental_id)
            )
        logger.info("rental_failed", rental_id=str(rental_id), reason=reason)
        return True

    async def record_messages(self, rental_id: uuid.UUID, messages: Sequence[ProviderMessage]) -> int:
        """Store every new message (one seen before, under its id or pushed under another, is skipped); how many
        were new."""
        session, stored = self._session, 0
        messages = await new_messages(session, _M, _M.rental_id, rental_id, messages)
        for message in messages:
            code = message.code or parse_code(message.text) or None
            values: dict[str, Any] = {
                "id": uuid7(),
                "rental_id": rental_id,
                "provider_message_id": message.provider_id[:64],
                "text": message.text[:1600],
                "code": code[:8] if code else None,
                "received_at": message.received_at,
            }
            result = await session.execute(_INSERT_MESSAGE_OR_SKIP, values)
            stored += getattr(result, "rowcount", 0) or 0
            if getattr(result, "rowcount", 0):
                await rental_message_recorded(session, rental_id, values)
        if stored:
            logger.info("rental_messages_recorded", rental_id=str(rental_id), count=stored)
        return stored

    async def fail_stale(self, now: datetime, pending_for: timedelta, *, limit: int = 500) -> int:
        """Fail and refund rentals still pending `pending_for` after they were paid for (their acquire job was lost or
        the provider never answered), each through `fail`: of it and a concurrent assignment exactly one wins, and
        an acquire that loses gives the number back. In id order, so concurrent sweeps lock rows in one order;
        at most `limit` a round, so a backlog does not make one long transaction."""
        stale = _R.created_at <= now - pending_for
        query = select(_R.id).where(_R.status == PENDING, stale).order_by(_R.id).limit(limit)
        failed = 0
        for rental_id in (await self._session.scalars(query)).all():
            failed += await self.fail(rental_id, "pending_timeout")
        if failed:
            logger.warning("rentals_pending_timed_out", count=failed)
        return failed

    async def reconcile_end(self, rental_id: uuid.UUID, ours: datetime, reported: datetime) -> bool:
        """After an extension, take the provider's end when it is a little earlier than `ours` (the end that extension
        set): the number stops then, so the customer sees it and the sweep renews or expires before it. A later end
        is kept ours (days nobody paid for are neither shown nor refunded). Compare-and-set on `ours`: once a later
        change moved the end, that change's own job reconciles."""
        if not ours - RECONCILE_WITHIN < reported < ours:
            # Later, or a day off: an extension missing or doubled at the provider (run out of order, failed,
            # delivered twice), which this job can not tell apart, so an operator looks.
            if reported != ours:
                logger.warning(
                    "rental_provider_end_differs", rental_id=str(rental_id), ours=str(ours), reported=str(reported)
                )
            return False
        moved = await self._set(rental_id, _R.status == ACTIVE, _R.ends_at == ours, ends_at=reported)
        if moved:
            logger.info("rental_end_reconciled", rental_id=str(rental_id), ends_at=reported.isoformat())
        return moved

    async def expire_due(self, now: datetime) -> int:
        """Active rentals past their end expire; auto-renewing ones are `renew_due`'s (renewed or lapsed)."""
        await rentals_expiring(self._session, now)  # the `rental.expiring` webhooks of rentals about to end
        result = await self._session.execute(
            update(_R)
            .where(_R.status == ACTIVE, _R.auto_renew.is_(False), _R.ends_at <= now)
            .values(status=RentalStatus.EXPIRED.value, updated_at=now)
            .returning(_R.id)
            .execution_options(synchronize_session=False)
        )
        count = len(result.all())
        if count:
            logger.info("rentals_expired", count=count)
        return count

    async def renew_due(self, now: datetime, horizon: timedelta) -> tuple[int, int]:
        """Renew auto-renewing active rentals ending within `horizon` for their period again (charged once per
        end, so keep `horizon` shorter than the shortest period); a wallet that can not pay is tried again each
        sweep until the end, where the rental lapses. Answers (renewed, lapsed)."""
        due = (
            await self._session.scalars(
                select(_R).where(_R.status == ACTIVE, _R.auto_renew.is_(True), _R.ends_at <= now + horizon)
            )
        ).all()
        renewed = lapsed = 0
        for rental in due:
            if await self._renew(rental):
                renewed += 1
            elif rental.ends_at <= now and await self._set(
                rental.id, _R.status == ACTIVE, _R.ends_at == rental.ends_at, status=RentalStatus.LAPSED.value
            ):
                lapsed += 1
                logger.info("rental_lapsed", rental_id=str(rental.id))
        return renewed, lapsed

    # --- internals ----------------------------------------------------------------------------------------

    async def _renew(self, rental: Rental) -> bool:
        """False when the wallet is short (nothing written) or the rental changed meanwhile."""
        charge, ends_at = rental.price_per_day * rental.days, rental.ends_at + rental.days * DAY
        try:
            async with self._session.begin_nested():
                moved = await self._set(
                    rental.id,
                    _R.status == ACTIVE,
                    _R.ends_at == rental.ends_at,
                    ends_at=ends_at,
                    price=rental.price + charge,
                )
                if moved and charge > 0:
                    reference = renew_reference(rental.id, rental.ends_at)
                    await WalletService(session=self._session).debit(
                        rental.user_id, charge, kind=EntryKind.RENTAL, reference=reference
                    )
        except InsufficientCredits:
            return False
        if moved and rental.provider_id is not None:
            job = ExtendAtProvider(
                rental_id=rental.id, provider_id=rental.provider_id, days=rental.days, ends_at=ends_at
            )
            await OutboxService(session=self._session).request(job)
            logger.info("rental_renewed", rental_id=str(rental.id), price=charge)
        return moved

    async def _set(self, rental_id: uuid.UUID, *conditions: ColumnElement[bool], **values: Any) -> bool:
        """One conditional UPDATE: of concurrent changes of one row, the row lock lets exactly one match."""
        row = (
            await self._session.execute(
                update(_R)
                .where(_R.id == rental_id, *conditions)
                .values(updated_at=utcnow(), **values)
                .returning(_R.id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        return row is not None

    def _check_days(self, days: int) -> None:
        if days not in self.rental_days:
            offered = ", ".join(str(d) for d in sorted(self.rental_days))
            raise UnsupportedRentalDays(f"Rentals are sold for {offered} days, not {days}")


def _replay(earlier: Rental, fingerprint: str) -> Rental:
    check_same_request(earlier.request_fingerprint, fingerprint)
    logger.info("rental_purchase_replayed", rental_id=str(earlier.id))
    return earlier
