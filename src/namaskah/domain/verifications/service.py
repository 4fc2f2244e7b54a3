"""Buying a verification (charged once, even for concurrent retries) and every status change after it, each a
conditional UPDATE so that exactly one terminal transition wins and a refund is booked at most once."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import ColumnElement, Table, delete, exists, func, select, update
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import column_values, rowcount
from namaskah.db.service import Service
from namaskah.db.upsert import insert_or_skip_into
from namaskah.domain.catalog.pricing import ExchangeRates
from namaskah.domain.catalog.service import CatalogService
from namaskah.domain.verifications.jobs import AcquireNumber, CancelAtProvider, PollMessages
from namaskah.domain.verifications.models import (
    OPEN_STATUSES,
    Verification,
    VerificationMessage,
    VerificationStatus,
)
from namaskah.domain.verifications.schemas import VerificationCreate
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import InsufficientCredits, WalletService
from namaskah.domain.webhooks.events import verification_changed
from namaskah.lib.errors import DomainError
from namaskah.lib.idempotency import check_same_request
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService
from namaskah.lib.received_sms import new_messages
from namaskah.providers.base import ProviderMessage, ProviderNumber

logger = get_logger(__name__)

DEFAULT_WINDOW = timedelta(seconds=900)
# The first run of 4 to 8 ASCII digits standing alone (a phone number is longer; \d would take other scripts).
CODE_PATTERN = re.compile(r"(?<![0-9])[0-9]{4,8}(?![0-9])")

_V = Verification
_M = VerificationMessage
_VERIFICATIONS: Table = Verification.__table__  # type: ignore[assignment]
_MESSAGES: Table = VerificationMessage.__table__  # type: ignore[assignment]
_INSERT_MESSAGE_OR_SKIP = insert_or_skip_into(_MESSAGES, ("verification_id", "provider_message_id"))


class VerificationNotFound(DomainError):
    status_code = 404
    code = "verification_not_found"
    title = "Verification not found"


class NotCancellable(DomainError):
    status_code = 409
    code = "not_cancellable"
    title = "Verification can not be cancelled"


def parse_code(text: str) -> str | None:
    match = CODE_PATTERN.search(text)
    return match.group() if match else None


def charge_reference(verification_id: uuid.UUID) -> str:
    return f"verification:{verification_id}"


def refund_reference(verification_id: uuid.UUID) -> str:
    # One reference for every way a verification can end refunded: the ledger books it at most once.
    return f"verification:{verification_id}:refund"


class VerificationRepository(SQLAlchemyAsyncRepository[Verification]):
    model_type = Verification


class VerificationService(Service[Verification, VerificationRepository]):
    """Joins the caller's transaction; jobs are requested through the outbox, so none leaves before the commit."""

    repository_type = VerificationRepository

    def __init__(
        self, *, rates: ExchangeRates | None = None, window: timedelta = DEFAULT_WINDOW, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rates = rates
        self.window = window

    # --- the purchase -------------------------------------------------------------------------------------

    async def purchase(
        self, user_id: uuid.UUID, tier: str, request: VerificationCreate, idempotency_key: str | None
    ) -> Verification:
        """Charge the quoted price and request the number; a repeated key with the same body answers the first
        verification and charges nothing, with another body 422 `idempotency_key_reused`."""
        session, fingerprint = self._session, request.fingerprint()
        if idempotency_key is not None and (earlier := await self._by_key(user_id, idempotency_key)) is not None:
            return _replay(earlier, fingerprint)
        if self.rates is None:
            raise RuntimeError("a purchase needs the exchange rates")
        quote = await CatalogService(session=session, rates=self.rates).quote(request.service, tier)
        now = utcnow()
        verification = Verification(
            id=uuid7(),
            user_id=user_id,
            service=quote.entry.slug,
            service_name=quote.entry.name,
            provider=quote.entry.provider,
            provider_service=quote.entry.provider_service,
            status=VerificationStatus.PENDING.value,
            price=quote.price,
            currency=quote.currency,
            area_code=request.area_code,
            carrier=request.carrier,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            failure_reason=None,
            provider_id=None,
            phone_number=None,
            expires_at=now + self.window,
            created_at=now,
            updated_at=now,
        )
        # The row goes in first: a concurrent twin with the same key waits on the unique index until this
        # transaction ends, then inserts nothing and answers with our row instead of charging again.
        inserted = await session.execute(
            insert_or_skip_into(_VERIFICATIONS, ("user_id", "idempotency_key")), column_values(verification)
        )
        if not rowcount(inserted):
            winner = None if idempotency_key is None else await self._by_key(user_id, idempotency_key)
            if winner is None:
                raise RuntimeError("a verification row was neither inserted nor found under its key")
            return _replay(winner, fingerprint)
        if verification.price > 0:
            try:
                await WalletService(session=session).debit(
                    user_id, verification.price, kind=EntryKind.PURCHASE, reference=charge_reference(verification.id)
                )
            except InsufficientCredits:
                # Leave nothing behind even if the caller commits what else it did.
                await session.execute(delete(_V).where(_V.id == verification.id))
                raise
        await OutboxService(session=session).request(AcquireNumber(verification_id=verification.id))
        logger.info("verification_purchased", verification_id=str(verification.id), price=verification.price)
        return verification

    async def _by_key(self, user_id: uuid.UUID, key: str) -> Verification | None:
        query = (
            select(_V).where(_V.user_id == user_id, _V.idempotency_key == key).execution_options(populate_existing=True)
        )
        return (await self._session.scalars(query)).one_or_none()

    # --- reads --------------------------------------------------------------------------------------------

    async def get_for(self, user_id: uuid.UUID, verification_id: uuid.UUID) -> Verification:
        """The caller's verification; another user's is as missing as one that does not exist."""
        query = (
            select(_V).where(_V.id == verification_id, _V.user_id == user_id).execution_options(populate_existing=True)
        )
        found = (await self._session.scalars(query)).one_or_none()
        if found is None:
            raise VerificationNotFound(f"No verification {verification_id}")
        return found

    async def snapshot(
        self, user_id: uuid.UUID, verification_id: uuid.UUID
    ) -> tuple[Verification, list[VerificationMessage]]:
        """The caller's verification and its messages read by one statement: one snapshot, so a message committed
        between two reads never shows beside the status the verification had before it."""
        query = (
            select(_V, _M)
            .outerjoin(_M, _M.verification_id == _V.id)
            .where(_V.id == verification_id, _V.user_id == user_id)
            .order_by(_M.received_at, _M.id)
            .execution_options(populate_existing=True)
        )
        rows = (await self._session.execute(query)).all()
        if not rows:
            raise VerificationNotFound(f"No verification {verification_id}")
        return rows[0][0], [message for _, message in rows if message is not None]

    async def list_for(self, user_id: uuid.UUID, *, limit: int, offset: int) -> tuple[Sequence[Verification], int]:
        """Newest first (ids are UUIDv7, so they sort by creation)."""
        rows = await self._session.scalars(
            select(_V).where(_V.user_id == user_id).order_by(_V.id.desc()).limit(limit).offset(offset)
        )
        total = await self._session.scalar(select(func.count()).select_from(_V).where(_V.user_id == user_id))
        return rows.all(), total or 0

    async def messages_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[VerificationMessage]]:
        found: dict[uuid.UUID, list[VerificationMessage]] = {i: [] for i in ids}
        if ids:
            rows = await self._session.scalars(
                select(_M).where(_M.verification_id.in_(ids)).order_by(_M.received_at, _M.id)
            )
            for row in rows:
                found[row.verification_id].append(row)
        return found

    async def load(self, verification_id: uuid.UUID) -> Verification | None:
        query = select(_V).where(_V.id == verification_id).execution_options(populate_existing=True)
        return (await self._session.scalars(query)).one_or_none()

    # --- what the jobs report -----------------------------------------------------------------------------

    async def assign(self, verification_id: uuid.UUID, number: ProviderNumber) -> bool:
        """Record the bought number and start polling; False when the verification is no longer pending
        (cancelled or expired meanwhile): the caller then gives the number back."""
        moved = await self._transition(
            verification_id,
            VerificationStatus.ACTIVE,
            _V.status == VerificationStatus.PENDING.value,
            provider_id=number.provider_id,
            phone_number=number.phone_number,
        )
        if moved is None:
            return False
        await OutboxService(session=self._session).request(PollMessages(verification_id=verification_id))
        return True

    async def fail(self, verification_id: uuid.UUID, reason: str) -> bool:
        """The provider refused: failed and refunded, unless the verification already ended otherwise."""
        moved = await self._transition(
            verification_id, VerificationStatus.FAILED, _V.status.in_(OPEN_STATUSES), failure_reason=reason[:200]
        )
        if moved is None:
            return False
        await self._refund(moved)
        return True

    async def record_messages(
        self, verification_id: uuid.UUID, messages: Sequence[ProviderMessage]
    ) -> Verification | None:
        """Store new messages (one seen before, under its id or pushed under another, is skipped); the first one
        with text completes an open verification. A late message on an ended one is kept and changes nothing else."""
        session = self._session
        stored = False
        messages = await new_messages(session, _M, _M.verification_id, verification_id, messages)
        for message in messages:
            values: dict[str, Any] = {
                "id": uuid7(),
                "verification_id": verification_id,
                "provider_message_id": message.provider_id[:64],
                "text": message.text[:1600],
                "code": (message.code or parse_code(message.text) or None),
                "received_at": message.received_at,
            }
            if values["code"] is not None:
                values["code"] = values["code"][:8]
            result = await session.execute(_INSERT_MESSAGE_OR_SKIP, values)
            stored = stored or bool(rowcount(result))
        if any(message.text for message in messages):
            await self._transition(verification_id, VerificationStatus.COMPLETED, _V.status.in_(OPEN_STATUSES))
        if stored:
            logger.info("verification_messages_recorded", verification_id=str(verification_id))
        return await self.load(verification_id)

    async def cancel(self, user_id: uuid.UUID, verification_id: uuid.UUID) -> Verification:
        """Cancel and refund, only while no SMS arrived; 409 `not_cancellable` otherwise."""
        await self.get_for(user_id, verification_id)
        moved = await self._transition(
            verification_id,
            VerificationStatus.CANCELLED,
            _V.user_id == user_id,
            _V.status.in_(OPEN_STATUSES),
            ~exists().where(_M.verification_id == _V.id),
        )
        if moved is None:
            raise NotCancellable("Only a verification that received no SMS and is still open can be cancelled")
        await self._refund(moved)
        if moved.provider_id is not None:
            job = CancelAtProvider(verification_id=verification_id, provider_id=moved.provider_id)
            await OutboxService(session=self._session).request(job)
        logger.info("verification_cancelled", verification_id=str(verification_id))
        return await self.get_for(user_id, verification_id)

    async def expire_due(self, now: datetime, *, only: uuid.UUID | None = None) -> int:
        """Expire and refund open verifications past their window that received nothing; the number expired."""
        conditions: list[ColumnElement[bool]] = [
            _V.status.in_(OPEN_STATUSES),
            _V.expires_at <= now,
            ~exists().where(_M.verification_id == _V.id),
        ]
        if only is not None:
            conditions.append(_V.id == only)
        rows = (
            await self._session.execute(
                update(_V)
                .where(*conditions)
                .values(status=VerificationStatus.EXPIRED.value, updated_at=now)
                .returning(_V.id, _V.user_id, _V.price, _V.provider_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        for row in rows:
            await self._refund(_Moved(row.id, row.user_id, row.price, row.provider_id))
            await verification_changed(self._session, row.id, row.user_id, VerificationStatus.EXPIRED.value)
        if rows:
            logger.info("verifications_expired", count=len(rows))
        return len(rows)

    # --- internals ----------------------------------------------------------------------------------------

    async def _transition(
        self, verification_id: uuid.UUID, to: VerificationStatus, *conditions: ColumnElement[bool], **values: Any
    ) -> _Moved | None:
        """One conditional UPDATE: of concurrent transitions of one row, the row lock lets exactly one match."""
        row = (
            await self._session.execute(
                update(_V)
                .where(_V.id == verification_id, *conditions)
                .values(status=to.value, updated_at=utcnow(), **values)
                .returning(_V.id, _V.user_id, _V.price, _V.provider_id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is not None:
            await verification_changed(self._session, row.id, row.user_id, to.value)
        return None if row is None else _Moved(row.id, row.user_id, row.price, row.provider_id)

    async def _refund(self, moved: _Moved) -> None:
        if moved.price > 0:
            await WalletService(session=self._session).credit(
                moved.user_id, moved.price, kind=EntryKind.REFUND, reference=refund_reference(moved.id)
            )


class _Moved:
    """What a transition returned: enough to refund and to give the number back."""

    __slots__ = ("id", "price", "provider_id", "user_id")

    def __init__(self, id_: uuid.UUID, user_id: uuid.UUID, price: int, provider_id: str | None) -> None:
        self.id, self.user_id, self.price, self.provider_id = id_, user_id, price, provider_id


def _replay(earlier: Verification, fingerprint: str) -> Verification:
    check_same_request(earlier.request_fingerprint, fingerprint)
    logger.info("verification_purchase_replayed", verification_id=str(earlier.id))
    return earlier
