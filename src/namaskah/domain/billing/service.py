"""Top-ups and what Paystack reports about them: a success credits once (whoever reports it first, webhook or
verify), a mismatch credits nothing and is flagged, refunds and disputes take the credits back out (never below
zero: what the wallet lacks is flagged), and the operators' list of flags."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from enum import StrEnum

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from prometheus_client import Counter
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import rowcount
from namaskah.db.session import plain_session
from namaskah.db.upsert import insert_or_skip
from namaskah.domain.billing.errors import TopupNotFound
from namaskah.domain.billing.models import CREDITABLE, BillingFlag, FlagKind, Topup, TopupStatus
from namaskah.domain.billing.paystack_schemas import InitializeData, Transaction
from namaskah.domain.wallet.models import EntryKind, LedgerAccount, LedgerTransaction
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.logging import get_logger

logger = get_logger(__name__)

TOPUPS_CREDITED = Counter(
    "topups_credited_total", "Top-ups credited to a wallet, by who reported the success.", ("via",)
)
BILLING_FLAGS = Counter("billing_flags_total", "Billing problems raised for operators, by kind.", ("kind",))
# Paystack allows only letters, digits, '-', '.' and '=' in a reference; 128 random bits make it unguessable.
REFERENCE_PREFIX = "tu-"
_T = Topup


def new_reference() -> str:
    return REFERENCE_PREFIX + secrets.token_hex(16)


def ledger_reference(reference: str) -> str:
    """The one ledger reference of a top-up's credit: booking it twice answers the first booking."""
    return f"paystack:{reference}"


class Settled(StrEnum):
    """What a report from Paystack did to a top-up."""

    CREDITED = "credited"
    ALREADY = "already"  # settled before (by the other path, or by an earlier run of this one)
    MISMATCH = "mismatch"
    FAILED = "failed"
    WAITING = "waiting"  # not paid yet
    UNKNOWN = "unknown"  # no top-up of ours holds the reference


class TopupRepository(SQLAlchemyAsyncRepository[Topup]):
    model_type = Topup


class TopupService(SQLAlchemyAsyncRepositoryService[Topup, TopupRepository]):
    """Joins the caller's transaction; the caller keeps network calls out of it."""

    repository_type = TopupRepository

    @property
    def _session(self) -> AsyncSession:
        return plain_session(self.repository.session)

    # --- opening ------------------------------------------------------------------------------------------

    async def open(self, user_id: uuid.UUID, amount: int, currency: str) -> Topup:
        topup = Topup(id=uuid7(), reference=new_reference(), user_id=user_id, amount=amount, currency=currency)
        self._session.add(topup)
        await self._session.flush()
        return topup

    async def opened(self, topup_id: uuid.UUID, data: InitializeData) -> Topup:
        """Store the checkout Paystack gave, unless a report settled the top-up meanwhile (a webhook can overtake
        the initialize answer on the way back)."""
        await self._session.execute(
            update(_T)
            .where(_T.id == topup_id, _T.status == TopupStatus.INITIALIZING.value)
            .values(
                status=TopupStatus.PENDING.value,
                authorization_url=data.authorization_url,
                access_code=data.access_code,
                updated_at=utcnow(),
            )
        )
        return await self._reload(topup_id)

    async def failed_to_open(self, topup_id: uuid.UUID, failure: str) -> Topup:
        await self._session.execute(
            update(_T)
            .where(_T.id == topup_id, _T.status == TopupStatus.INITIALIZING.value)
            .values(status=TopupStatus.FAILED.value, failure=failure[:200], updated_at=utcnow())
        )
        logger.warning("topup_initialize_failed", topup_id=str(topup_id), failure=failure[:200])
        return await self._reload(topup_id)

    # --- reading ------------------------------------------------------------------------------------------

    async def owned(self, reference: str, user_id: uuid.UUID) -> Topup:
        """The caller's own top-up; another user's reference is as unknown as a made-up one (404)."""
        topup = await self.by_reference(reference)
        if topup is None or topup.user_id != user_id:
            raise TopupNotFound(f"No top-up {reference!r} of yours")
        return topup

    async def by_reference(self, reference: str) -> Topup | None:
        query = select(_T).where(_T.reference == reference).execution_options(populate_existing=True)
        return (await self._session.scalars(query)).one_or_none()

    async def _reload(self, topup_id: uuid.UUID) -> Topup:
        query = select(_T).where(_T.id == topup_id).execution_options(populate_existing=True)
        return (await self._session.scalars(query)).one()

    # --- what Paystack reports ----------------------------------------------------------------------------

    async def settle(self, report: Transaction, *, via: str) -> Settled:
        """Apply Paystack's word on a transaction (the webhook's charge data or verify's answer). Success with our
        amount and currency credits once: the conditional UPDATE lets one report through (a concurrent one waits
        on the row, then finds it settled), and the ledger reference stands behind it."""
        topup = await self.by_reference(report.reference)
        if topup is None:
            return Settled.UNKNOWN
        if report.status == "failed":
            moved = await self._move(topup, (TopupStatus.INITIALIZING, TopupStatus.PENDING), TopupStatus.FAILED)
            return Settled.FAILED if moved else Settled.ALREADY
        if report.status != "success":
            return Settled.WAITING
        paid = {
            "paystack_id": report.id,
            "paid_amount": report.amount,
            "paid_currency": report.currency,
            "paid_at": report.paid_at or utcnow(),
            "settled_by": via,
            "failure": None,
        }
        if (report.amount, report.currency.upper()) != (topup.amount, topup.currency):
            return await self._mismatch(topup, report, paid)
        if not await self._move(topup, CREDITABLE, TopupStatus.SUCCESS, **paid):
            return Settled.ALREADY
        booking = await WalletService(session=self._session).credit(
            topup.user_id, topup.amount, kind=EntryKind.TOPUP, reference=ledger_reference(topup.reference)
        )
        TOPUPS_CREDITED.labels(via).inc()
        logger.info("topup_credited", reference=topup.reference, amount=topup.amount, via=via, created=booking.created)
        return Settled.CREDITED

    async def _mismatch(self, topup: Topup, report: Transaction, paid: dict[str, object]) -> Settled:
        """Paid, but not what we initialised: credit nothing (crediting either amount could be wrong), keep what
        Paystack said, and flag it for an operator to settle by hand."""
        if not await self._move(topup, CREDITABLE, TopupStatus.MISMATCH, flagged_at=utcnow(), **paid):
            return Settled.ALREADY
        detail = (
            f"Paystack reported success for {report.amount} {report.currency}; "
            f"the top-up was initialised for {topup.amount} {topup.currency}. Nothing was credited."
        )
        await self.flag(FlagKind.MISMATCH, f"mismatch:{topup.reference}", detail, topup, report.amount)
        return Settled.MISMATCH

    async def _move(self, topup: Topup, sources: Sequence[str], target: TopupStatus, **values: object) -> bool:
        statement = (
            update(_T)
            .where(_T.id == topup.id, _T.status.in_([str(s) for s in sources]))
            .values(status=target.value, updated_at=utcnow(), **values)
        )
        return bool(rowcount(await self._session.execute(statement)))

    async def refund(self, *, refund_id: str, reference: str, amount: int, currency: str) -> bool:
        """Paystack refunded (part of) a top-up to the customer: take that much back out of the wallet. True when
        fully booked; False when flagged (not our top-up, never credited, or the wallet held less)."""
        topup = await self.by_reference(reference)
        where = f"refund {refund_id} of {reference}"
        if topup is None:
            return await self._flag_unknown(f"refund:{refund_id}", where, amount, currency)
        if topup.status != TopupStatus.SUCCESS.value or currency.upper() != topup.currency:
            detail = f"Paystack refunded {amount} {currency} of top-up {reference}, which is {topup.status}"
            await self.flag(FlagKind.REFUND_UNCREDITED, f"refund:{refund_id}", detail, topup, amount)
            return False
        taken = await self._take_back(topup, amount, EntryKind.TOPUP_REFUND, f"paystack:refund:{refund_id}")
        await self._session.execute(
            update(_T).where(_T.id == topup.id).values(refunded_amount=_T.refunded_amount + amount, updated_at=utcnow())
        )
        logger.info("topup_refunded", reference=reference, refund_id=refund_id, amount=amount, taken=taken)
        if taken < amount:
            detail = f"{where}: {amount} refunded, the wallet held {taken}; {amount - taken} is owed"
            await self.flag(FlagKind.REFUND_SHORTFALL, f"refund_shortfall:{refund_id}", detail, topup, amount - taken)
            return False
        return True

    async def dispute_opened(self, *, dispute_id: str, reference: str, amount: int | None) -> bool:
        """A chargeback was opened: freeze the disputed credits (at most what is still credited) in the disputes
        account, where a decision for us releases them, and flag it. False when it could not all be frozen."""
        topup = await self.by_reference(reference)
        where = f"dispute {dispute_id} of {reference}"
        if topup is None:
            return await self._flag_unknown(f"dispute:{dispute_id}", where, amount, None)
        held = topup.amount - topup.refunded_amount - topup.frozen_amount
        wanted = max(0, min(amount or topup.amount, held)) if topup.status == TopupStatus.SUCCESS.value else 0
        taken = await self._take_back(topup, wanted, EntryKind.DISPUTE_FREEZE, f"paystack:dispute:{dispute_id}")
        await self._session.execute(
            update(_T).where(_T.id == topup.id).values(frozen_amount=_T.frozen_amount + taken, updated_at=utcnow())
        )
        detail = f"{where} opened for {amount if amount is not None else topup.amount}; {taken} frozen"
        await self.flag(FlagKind.DISPUTE, f"dispute:{dispute_id}", detail, topup, taken)
        if taken < wanted:
            short = f"{where}: {wanted} should be frozen, the wallet held {taken}"
            await self.flag(FlagKind.DISPUTE_SHORTFALL, f"dispute_shortfall:{dispute_id}", short, topup, wanted - taken)
            return False
        return True

    async def dispute_resolved(self, *, dispute_id: str, reference: str, resolution: str | None) -> bool:
        """Decided for us ("declined"): the frozen credits come back. Decided for the customer: they stay out of
        the wallet (the card was refunded) and an operator is told."""
        topup = await self.by_reference(reference)
        if topup is None:
            return await self._flag_unknown(f"dispute_resolved:{dispute_id}", f"dispute {dispute_id}", None, None)
        frozen = await self._session.scalar(
            select(LedgerTransaction.amount).where(LedgerTransaction.reference == f"paystack:dispute:{dispute_id}")
        )
        if resolution != "declined":
            detail = f"dispute {dispute_id} of {reference} resolved {resolution!r}: {frozen or 0} stays frozen"
            await self.flag(FlagKind.DISPUTE_LOST, f"dispute_lost:{dispute_id}", detail, topup, frozen)
            return False
        if frozen:
            booking = await WalletService(session=self._session).credit(
                topup.user_id,
                frozen,
                kind=EntryKind.DISPUTE_RELEASE,
                reference=f"paystack:dispute-release:{dispute_id}",
            )
            if booking.created:
                await self._session.execute(
                    update(_T)
                    .where(_T.id == topup.id)
                    .values(frozen_amount=_T.frozen_amount - frozen, updated_at=utcnow())
                )
        logger.info("topup_dispute_released", reference=reference, dispute_id=dispute_id, amount=frozen or 0)
        return True

    async def _take_back(self, topup: Topup, amount: int, kind: EntryKind, reference: str) -> int:
        """Debit up to `amount`, as much as the wallet holds. The wallet row is locked first, so no purchase moves
        the balance between reading it and booking. A balance may not go below zero (CHECK constraint), so what is
        missing can not be booked as a debt: the caller flags it. Booked once per reference."""
        balance = await self._session.scalar(
            select(LedgerAccount.balance).where(LedgerAccount.user_id == topup.user_id).with_for_update()
        )
        taken = min(balance or 0, amount)
        if taken <= 0:
            return 0
        booking = await WalletService(session=self._session).debit(topup.user_id, taken, kind=kind, reference=reference)
        return -booking.entry.amount

    # --- flags --------------------------------------------------------------------------------------------

    async def flag(
        self, kind: FlagKind, key: str, detail: str, topup: Topup | None = None, amount: int | None = None
    ) -> None:
        """Raise a flag for operators, once per key: a row, a warning line and a counted metric."""
        statement = insert_or_skip(
            self._session,
            BillingFlag,
            ("key",),
            id=uuid7(),
            key=key[:200],
            kind=kind.value,
            topup_id=topup.id if topup else None,
            user_id=topup.user_id if topup else None,
            reference=topup.reference if topup else None,
            amount=amount,
            currency=topup.currency if topup else None,
            detail=detail[:500],
            created_at=utcnow(),
        )
        if not rowcount(await self._session.execute(statement)):
            return
        if topup is not None:
            await self._session.execute(update(_T).where(_T.id == topup.id).values(flagged_at=utcnow()))
        BILLING_FLAGS.labels(kind.value).inc()
        logger.warning("billing_flag", kind=kind.value, key=key, detail=detail)

    async def _flag_unknown(self, key: str, what: str, amount: int | None, currency: str | None) -> bool:
        detail = f"{what}: no top-up of ours holds that reference" + (f" ({amount} {currency})" if amount else "")
        await self.flag(FlagKind.UNKNOWN_REFERENCE, key, detail, None, amount)
        return False

    async def flags(self, *, limit: int, offset: int) -> tuple[Sequence[BillingFlag], int]:
        """Newest first."""
        rows = await self._session.scalars(
            select(BillingFlag)
            .order_by(BillingFlag.created_at.desc(), BillingFlag.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self._session.scalar(select(func.count()).select_from(BillingFlag))
        return rows.all(), total or 0
