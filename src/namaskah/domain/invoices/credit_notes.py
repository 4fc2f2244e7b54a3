"""Credit notes: money given back against an issued invoice (a refund, a lost dispute), issued in the transaction
that takes it back, once per refund or dispute, numbered `CN-<year>-<n>` without gaps, and never changed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, NoReturn

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, select
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.domain.invoices.errors import CreditNoteNotFound, InvoiceReferenceConflict
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.domain.invoices.models import DESCRIPTION_MAX, CreditNote, CreditNoteKind, Invoice
from namaskah.domain.invoices.service import IssuedDocuments, NoChanges, YearCounter
from namaskah.domain.tax.calc import TaxSplit, round_half_up
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.service import OutboxService

logger = get_logger(__name__)

_NOTE_NUMBERS = YearCounter("credit_note_counters")
NOTHING = TaxSplit(0, 0, 0)


def credit_note_number(year: int, sequence: int) -> str:
    """`CN-2026-000001`, as invoice numbers are made."""
    return f"CN-{year}-{sequence:06d}"


def credit_split(invoice: TaxSplit, credited: TaxSplit, gross: int) -> TaxSplit:
    """Net, tax and gross of a note for `gross` more of `invoice`, after the notes that credited `credited`.

    The gross is capped at what is left of the invoice. The tax is split on the running total, not on the note
    alone: the notes' tax so far is `round(invoice.tax * credited_gross / invoice.gross)`, halves up, and this note
    takes the difference. That running tax never decreases and never grows faster than the gross (tax <= gross),
    so every note's net and tax are >= 0, and the sums reach exactly the invoice's net, tax and gross at a full
    refund and never pass them (rounding each note on its own could, by a kobo per note)."""
    gross = max(0, min(gross, invoice.gross - credited.gross))
    if gross == 0:
        return NOTHING
    running_tax = round_half_up(invoice.tax * (credited.gross + gross), invoice.gross)
    tax = running_tax - credited.tax
    return TaxSplit(net=gross - tax, tax=tax, gross=gross)


class CreditNoteRepository(NoChanges, SQLAlchemyAsyncRepository[CreditNote]):
    model_type = CreditNote


class CreditNoteService(IssuedDocuments[CreditNote, CreditNoteRepository]):
    """Joins the caller's transaction, as InvoiceService does: a note (its number, its mail) exists if and only if
    the transaction that took the money back commits. `issue` is the only way in."""

    repository_type = CreditNoteRepository
    missing = CreditNoteNotFound

    async def create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("Credit notes are issued with CreditNoteService.issue, which numbers them")

    async def create_many(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("Credit notes are issued with CreditNoteService.issue, which numbers them")

    async def issue(
        self,
        *,
        payment_reference: str,
        kind: CreditNoteKind | str,
        source_reference: str,
        gross: int,
        description: str,
        now: datetime | None = None,
    ) -> CreditNote | None:
        """Credit `gross` (minor units, as the invoice's gross reads: what the payer was charged) of the invoice of
        `payment_reference`, for the refund or dispute `source_reference`, and request the job that mails it.
        The same `source_reference` again answers its note (nothing new, no mail). None, and a warning, when the
        payment has no invoice or nothing of it is left to credit: the caller decides whether to flag that.

        The invoice's row is locked first (a row lock fires no trigger), so the notes of one invoice are issued
        one at a time and each sees the ones before it; then the year's counter, as invoices do: call it last."""
        kind = CreditNoteKind(kind)
        if isinstance(gross, bool) or not isinstance(gross, int) or gross <= 0:
            raise ValueError(f"a credit note credits a positive whole number of minor units, not {gross!r}")
        query = select(Invoice).where(Invoice.source_reference == payment_reference).with_for_update()
        invoice = (await self._session.scalars(query)).one_or_none()
        if invoice is None:
            logger.warning("credit_note_no_invoice", payment=payment_reference, source=source_reference)
            return None
        # Under the invoice's lock: a twin issuing for the same refund has committed by now, or it has not begun.
        if (existing := await self.by_reference(source_reference)) is not None:
            if existing.invoice_id != invoice.id:
                raise InvoiceReferenceConflict(f"{source_reference!r} credits {existing.invoice_number} already")
            logger.info("credit_note_already_issued", credit_note=existing.number)
            return existing
        totals = TaxSplit(invoice.net_total, invoice.tax_total, invoice.gross_total)
        split = credit_split(totals, await self.credited(invoice.id), gross)
        if split.gross < gross:
            logger.warning(
                "credit_note_capped", invoice=invoice.number, source=source_reference, asked=gross, left=split.gross
            )
        if split.gross == 0:
            return None
        issued_at = (now or utcnow()).astimezone(UTC)
        await _NOTE_NUMBERS.lock(self._session, issued_at.year)
        sequence = await _NOTE_NUMBERS.next(self._session, issued_at.year)
        note = CreditNote(
            id=uuid7(),
            number=credit_note_number(issued_at.year, sequence),
            year=issued_at.year,
            sequence=sequence,
            invoice_id=invoice.id,
            invoice_number=invoice.number,
            user_id=invoice.user_id,
            kind=kind.value,
            source_reference=source_reference,
            description=description.strip()[:DESCRIPTION_MAX],
            currency=invoice.currency,
            country=invoice.country,
            tax_mode=invoice.tax_mode,
            tax_name=invoice.tax_name,
            tax_rate_bps=invoice.tax_rate_bps,
            tax_basis=invoice.tax_basis,
            net_total=split.net,
            tax_total=split.tax,
            gross_total=split.gross,
            # The seller and buyer as the invoice printed them: a note corrects that document.
            seller_name=invoice.seller_name,
            seller_address=invoice.seller_address,
            seller_tax_id=invoice.seller_tax_id,
            buyer_email=invoice.buyer_email,
            issued_at=issued_at,
        )
        self._session.add(note)
        await self._session.flush()
        await OutboxService(session=self._session).request(EmailInvoice(invoice_id=note.id, credit_note=True))
        logger.info("credit_note_issued", credit_note=note.number, invoice=invoice.number, gross=split.gross)
        return note

    async def credited(self, invoice_id: uuid.UUID) -> TaxSplit:
        """What the invoice's notes credit so far, summed."""
        row = (
            await self._session.execute(
                select(
                    func.coalesce(func.sum(CreditNote.net_total), 0),
                    func.coalesce(func.sum(CreditNote.tax_total), 0),
                    func.coalesce(func.sum(CreditNote.gross_total), 0),
                ).where(CreditNote.invoice_id == invoice_id)
            )
        ).one()
        return TaxSplit(int(row[0]), int(row[1]), int(row[2]))
