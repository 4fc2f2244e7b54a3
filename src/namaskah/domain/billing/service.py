"""Top-ups and what Paystack reports about them: a success credits once and is invoiced once (whoever reports it
first, webhook or verify), a mismatch credits nothing and is flagged, refunds and disputes take the credits back out
(refunds.py: never below zero, what the wallet lacks is flagged, credit notes), top-ups stuck initializing fail, and
the operators' flags."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from prometheus_client import Counter
from sqlalchemy import func, select, update
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import rowcount
from namaskah.db.service import ConfiguredService
from namaskah.db.upsert import insert_or_skip
from namaskah.domain.billing.errors import TopupNotFound
from namaskah.domain.billing.models import CREDITABLE, BillingFlag, FlagKind, Topup, TopupStatus
from namaskah.domain.billing.paystack_schemas import InitializeData, Transaction
from namaskah.domain.billing.refunds import TakingBack
from namaskah.domain.invoices.models import InvoiceKind
from namaskah.domain.invoices.service import InvoiceService, LineItem
from namaskah.domain.tax.calc import TaxBasis, TaxMode, TaxPoint
from namaskah.domain.tax.service import AppliedRate, TaxService
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.logging import get_logger

logger = get_logger(__name__)

TOPUPS_CREDITED = Counter(
    "topups_credited_total", "Top-ups credited to a wallet, by who reported the success.", ("via",)
)
BILLING_FLAGS = Counter("billing_flags_total", "Billing problems raised for operators, by kind.", ("kind",))
# Paystack allows only letters, digits, '-', '.' and '=' in a reference; 128 random bits make it unguessable.
REFERENCE_PREFIX = "tu-"
INVOICE_LINE = "Namaskah SMS wallet credits"
STUCK_FAILURE = "initialize never answered"
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


class TopupService(TakingBack, ConfiguredService[Topup, TopupRepository]):
    """Joins the caller's transaction; the caller keeps network calls out of it. Refunds and disputes: TakingBack."""

    repository_type = TopupRepository

    # --- opening ------------------------------------------------------------------------------------------

    async def open(self, user_id: uuid.UUID, amount: int, currency: str) -> Topup:
        """A top-up crediting `amount`, quoted now at TAX_POINT and TAX_MODE: `charged_amount` is what Paystack is
        asked for (and must report paid), the quote is kept for the invoice (a rate changed meanwhile does not
        change what the customer was shown). 404 `tax_rate_not_found` here, before any payment, if no rate."""
        quote = await TaxService(self._session, settings=self.settings).quote_topup(amount)
        topup = Topup(
            id=uuid7(),
            reference=new_reference(),
            user_id=user_id,
            amount=amount,
            currency=currency,
            charged_amount=quote.split.gross,
            tax_amount=quote.split.tax,
            tax_point=self.settings.tax_point,
            tax_mode=quote.mode.value,
            tax_country=quote.rate.country,
            tax_name=quote.rate.name,
            tax_rate_bps=quote.rate.rate_bps,
        )
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

    async def fail_stuck(self, now: datetime) -> Sequence[str]:
        """Fail the top-ups still `initializing` TOPUP_INITIALIZING_TIMEOUT seconds after they were opened (the
        initialize answer never came: Paystack hung, or the process died), so their owner sees a final state.
        Answers their references. The same conditional UPDATE as `opened`: of the sweep and a late answer, the
        first to the row wins. A success Paystack reports later still credits (failed is creditable)."""
        before = now - timedelta(seconds=self.settings.topup_initializing_timeout)
        failure = f"{STUCK_FAILURE} within {self.settings.topup_initializing_timeout} s"
        statement = (
            update(_T)
            .where(_T.status == TopupStatus.INITIALIZING.value, _T.created_at < before)
            .values(status=TopupStatus.FAILED.value, failure=failure, updated_at=now)
            .returning(_T.reference)
            .execution_options(synchronize_session=False)
        )
        references = (await self._session.scalars(statement)).all()
        for reference in references:
            logger.warning("topup_stuck_failed", reference=reference, failure=failure)
        return references

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
        """Apply Paystack's word on a transaction (the webhook's charge data or verify's answer). Success with the
        amount we charged and our currency credits `amount` once and issues the top-up's invoice last: the
        conditional UPDATE lets one report through (a concurrent one waits on the row, then finds it settled), and
        the ledger reference and the invoice's source reference (the top-up's) stand behind it."""
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
        if (report.amount, report.currency.upper()) != (topup.charged_amount, topup.currency):
            return await self._mismatch(topup, report, paid)
        if not await self._move(topup, CREDITABLE, TopupStatus.SUCCESS, **paid):
            return Settled.ALREADY
        booking = await WalletService(session=self._session).credit(
            topup.user_id, topup.amount, kind=EntryKind.TOPUP, reference=ledger_reference(topup.reference)
        )
        invoice = await self._invoice(topup)
        TOPUPS_CREDITED.labels(via).inc()
        logger.info(
            "topup_credited",
            reference=topup.reference,
            amount=topup.amount,
            charged=topup.charged_amount,
            via=via,
            created=booking.created,
            invoice=invoice,
        )
        return Settled.CREDITED

    async def _invoice(self, topup: Topup) -> str:
        """The paid top-up's invoice, at the quote it was charged at (the last step: it takes the year's counter
        lock). Payment tax point: the line is the credited amount as the quote's mode reads it, so net + tax =
        gross = charged. Usage: a receipt of the amount at 0 tax. Answers the number."""
        rate, mode = await self._terms_of(topup)
        invoice = await InvoiceService(self._session, settings=self.settings).issue(
            user_id=topup.user_id,
            kind=InvoiceKind.TOPUP,
            source_reference=topup.reference,
            lines=[LineItem(INVOICE_LINE, topup.amount)],
            currency=topup.currency,
            rate=rate,
            mode=mode,
        )
        if invoice.gross_total != topup.charged_amount:  # one arithmetic at checkout and here: never expected
            raise RuntimeError(f"invoice {invoice.number} totals {invoice.gross_total}, charged {topup.charged_amount}")
        return invoice.number

    async def _terms_of(self, topup: Topup) -> tuple[AppliedRate, TaxMode]:
        """The rate and mode stored at checkout. A top-up from before migration 0022 was charged its amount, which
        then reads as a gross at today's rate (or as a prepayment, under TAX_POINT=usage)."""
        if topup.tax_name is None or topup.tax_rate_bps is None or topup.tax_country is None:
            quote = await TaxService(self._session, settings=self.settings).quote_topup(topup.amount)
            return quote.rate, TaxMode.INCLUSIVE
        basis = TaxBasis.PREPAYMENT if topup.tax_point == TaxPoint.USAGE.value else TaxBasis.CHARGED
        rate = AppliedRate(topup.tax_country, topup.tax_name, topup.tax_rate_bps, basis)
        return rate, TaxMode(topup.tax_mode or TaxMode.INCLUSIVE.value)

    async def _mismatch(self, topup: Topup, report: Transaction, paid: dict[str, object]) -> Settled:
        """Paid, but not what we initialised: credit nothing (crediting either amount could be wrong), keep what
        Paystack said, and flag it for an operator to settle by hand."""
        if not await self._move(topup, CREDITABLE, TopupStatus.MISMATCH, flagged_at=utcnow(), **paid):
            return Settled.ALREADY
        detail = (
            f"Paystack reported success for {report.amount} {report.currency}; "
            f"the top-up was initialised for {topup.charged_amount} {topup.currency}. Nothing was credited."
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
