"""Money Paystack gave back to a customer, taken back out of the wallet: refunds, and disputes (frozen while open,
released when decided for us, kept out and credited when lost). A refund or a lost dispute of an invoiced top-up
issues its credit note in the same transaction, once per refund or dispute id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import exists, or_, select, update

from namaskah.db.base import utcnow
from namaskah.domain.billing.models import BillingFlag, FlagKind, Topup, TopupStatus
from namaskah.domain.invoices.credit_notes import CreditNoteService
from namaskah.domain.invoices.models import CreditNote, CreditNoteKind
from namaskah.domain.tax.calc import round_half_up
from namaskah.domain.wallet.models import EntryKind, LedgerAccount, LedgerTransaction
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.logging import get_logger

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from namaskah.settings import Settings

logger = get_logger(__name__)

_T = Topup
NOTE_LINES = {
    CreditNoteKind.REFUND: "Refund of Namaskah SMS wallet credits",
    CreditNoteKind.DISPUTE: "Chargeback of Namaskah SMS wallet credits (dispute lost)",
}


def credits_of(topup: Topup, charged: int) -> int:
    """The credits behind `charged` kobo of what Paystack charged for the top-up (a refund or a dispute names a
    charged amount): the same when the top-up charged what it credited, in proportion when tax was added on top."""
    if topup.charged_amount == topup.amount:
        return charged
    return round_half_up(charged * topup.amount, topup.charged_amount)


def missing_note_key(source: str) -> str:
    return f"credit_note_missing:{source}"


class TakingBack:
    """TopupService's refund and dispute paths (a mixin: it joins the same transaction and uses its flags)."""

    if TYPE_CHECKING:
        settings: Settings

        @property
        def _session(self) -> AsyncSession: ...

        async def flag(
            self, kind: FlagKind, key: str, detail: str, topup: Topup | None = None, amount: int | None = None
        ) -> None: ...

        async def _flag_unknown(self, key: str, what: str, amount: int | None, currency: str | None) -> bool: ...

    async def _locked(self, reference: str) -> Topup | None:
        """The top-up, its row locked to the end of the transaction: refunds and disputes of one top-up take turns
        (the same order as a settlement: top-up, then wallet, then the credit note counter), so a repeat of one
        finds its note, and each note sees the ones before it."""
        query = select(_T).where(_T.reference == reference).with_for_update().execution_options(populate_existing=True)
        return (await self._session.scalars(query)).one_or_none()

    async def refund(self, *, refund_id: str, reference: str, amount: int, currency: str) -> bool:
        """Paystack refunded (part of) a top-up to the customer: take that much back out of the wallet and issue
        the credit note of `amount` against its invoice. True when fully booked (or booked before: a repeat moves
        nothing); False when flagged (not our top-up, never credited, or the wallet held less)."""
        topup = await self._locked(reference)
        where = f"refund {refund_id} of {reference}"
        if topup is None:
            return await self._flag_unknown(f"refund:{refund_id}", where, amount, currency)
        if topup.status != TopupStatus.SUCCESS.value or currency.upper() != topup.currency:
            # Never credited (a mismatch, a failure): nothing to take back, and no invoice to credit.
            detail = f"Paystack refunded {amount} {currency} of top-up {reference}, which is {topup.status}"
            await self.flag(FlagKind.REFUND_UNCREDITED, f"refund:{refund_id}", detail, topup, amount)
            return False
        source = f"refund:{refund_id}"
        if await self._booked_before(source):
            logger.info("topup_refund_already_booked", reference=reference, refund_id=refund_id)
            return not await self._flagged(f"refund_shortfall:{refund_id}")  # as the first run answered
        credits = credits_of(topup, amount)
        taken = await self._take_back(topup, credits, EntryKind.TOPUP_REFUND, f"paystack:refund:{refund_id}")
        await self._session.execute(
            update(_T)
            .where(_T.id == topup.id)
            .values(refunded_amount=_T.refunded_amount + credits, updated_at=utcnow())
        )
        logger.info("topup_refunded", reference=reference, refund_id=refund_id, amount=amount, taken=taken)
        if taken < credits:
            owed = credits - taken
            detail = f"{where}: {amount} refunded ({credits} in credits), the wallet held {taken}; {owed} is owed"
            await self.flag(FlagKind.REFUND_SHORTFALL, f"refund_shortfall:{refund_id}", detail, topup, owed)
        # The money left either way: the note documents the refund, not what the wallet could give back.
        await self._credit_note(topup, CreditNoteKind.REFUND, source, amount)
        return taken >= credits

    async def dispute_opened(self, *, dispute_id: str, reference: str, amount: int | None) -> bool:
        """A chargeback was opened: freeze the disputed credits (at most what is still credited) in the disputes
        account, where a decision for us releases them, and flag it. False when it could not all be frozen."""
        topup = await self._locked(reference)
        where = f"dispute {dispute_id} of {reference}"
        if topup is None:
            return await self._flag_unknown(f"dispute:{dispute_id}", where, amount, None)
        held = topup.amount - topup.refunded_amount - topup.frozen_amount
        claimed = topup.amount if amount is None else credits_of(topup, amount)
        wanted = max(0, min(claimed or topup.amount, held)) if topup.status == TopupStatus.SUCCESS.value else 0
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

    async def dispute_resolved(
        self, *, dispute_id: str, reference: str, resolution: str | None, amount: int | None = None
    ) -> bool:
        """Decided for us ("declined"): the frozen credits come back. Decided for the customer: they stay out of
        the wallet (the card was refunded), an operator is told, and a credited top-up gets its credit note for the
        disputed `amount` (charged kobo; the whole charge when Paystack names none), once per dispute."""
        topup = await self._locked(reference)
        if topup is None:
            return await self._flag_unknown(f"dispute_resolved:{dispute_id}", f"dispute {dispute_id}", None, None)
        frozen = await self._session.scalar(
            select(LedgerTransaction.amount).where(LedgerTransaction.reference == f"paystack:dispute:{dispute_id}")
        )
        if resolution != "declined":
            detail = f"dispute {dispute_id} of {reference} resolved {resolution!r}: {frozen or 0} stays frozen"
            await self.flag(FlagKind.DISPUTE_LOST, f"dispute_lost:{dispute_id}", detail, topup, frozen)
            source = f"dispute:{dispute_id}"
            if topup.status == TopupStatus.SUCCESS.value and not await self._booked_before(source):
                gross = amount if amount else topup.charged_amount  # no amount (or 0) claims all, as when opened
                await self._credit_note(topup, CreditNoteKind.DISPUTE, source, gross)
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

    async def _booked_before(self, source: str) -> bool:
        """A refund or lost dispute already booked: its credit note exists, or the flag that said it could have
        none (the mark a repeat finds, so it moves nothing twice)."""
        query = select(
            or_(
                exists().where(CreditNote.source_reference == source),
                exists().where(BillingFlag.key == missing_note_key(source)),
            )
        )
        return bool(await self._session.scalar(query))

    async def _flagged(self, key: str) -> bool:
        return bool(await self._session.scalar(select(exists().where(BillingFlag.key == key))))

    async def _credit_note(self, topup: Topup, kind: CreditNoteKind, source: str, gross: int) -> None:
        """The note of `gross` charged kobo given back, last in the transaction (it takes the year's counter lock).
        A credited top-up with no invoice (from before invoices), or one credited in full already, gets none: an
        operator is told, and the flag marks the refund booked. Nothing given back (a refund of 0) needs none."""
        if gross <= 0:
            return
        note = await CreditNoteService(self._session, settings=self.settings).issue(
            payment_reference=topup.reference,
            kind=kind,
            source_reference=source,
            gross=gross,
            description=NOTE_LINES[kind],
        )
        if note is None:
            detail = f"{source} of {topup.reference} gave back {gross}: no invoice, or nothing of it left to credit"
            await self.flag(FlagKind.CREDIT_NOTE_MISSING, missing_note_key(source), detail, topup, gross)

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
