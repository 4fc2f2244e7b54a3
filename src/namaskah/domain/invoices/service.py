"""Issuing invoices (idempotent on the payment they document, numbered without gaps per year), and reading them
back for their owner. There is no path that changes or removes an invoice."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, NamedTuple, NoReturn, TypeVar

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.service import ConfiguredService
from namaskah.domain.accounts.models import User
from namaskah.domain.admin.service import UserNotFound
from namaskah.domain.invoices.errors import InvoiceImmutable, InvoiceNotFound, InvoiceReferenceConflict
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.domain.invoices.models import (
    DESCRIPTION_MAX,
    LINES_MAX,
    REFERENCE_MAX,
    CreditNote,
    Invoice,
    InvoiceKind,
    InvoiceLine,
)
from namaskah.domain.tax.calc import TaxMode, apply_tax
from namaskah.domain.tax.service import AppliedRate, TaxService
from namaskah.lib.errors import DomainError
from namaskah.lib.logging import get_logger
from namaskah.lib.money import MINOR_UNITS
from namaskah.lib.outbox.service import OutboxService

logger = get_logger(__name__)


class YearCounter:
    """A per-year number series in `table` (invoices', credit notes'). The year's row is created at its first
    number and locked by `lock` until the transaction ends (ON CONFLICT DO UPDATE locks the row it meets, and waits
    for a concurrent creator to commit or roll back); `next` takes the number under that lock."""

    def __init__(self, table: Literal["invoice_counters", "credit_note_counters"]) -> None:
        # The table is one of two literal names of ours, never input: the f-strings build no injectable SQL.
        self._lock = text(
            f"INSERT INTO {table} (year, last_number) VALUES (:year, 0)"  # noqa: S608
            f" ON CONFLICT (year) DO UPDATE SET last_number = {table}.last_number"
        )
        self._next = text(
            f"UPDATE {table} SET last_number = last_number + 1 WHERE year = :year RETURNING last_number"  # noqa: S608
        )

    async def lock(self, session: AsyncSession, year: int) -> None:
        await session.execute(self._lock, {"year": year})

    async def next(self, session: AsyncSession, year: int) -> int:
        number: int = (await session.execute(self._next, {"year": year})).scalar_one()
        return number


_INVOICE_NUMBERS = YearCounter("invoice_counters")


class LineItem(NamedTuple):
    """One line to invoice. `amount` is per unit, in minor units, as TAX_MODE reads amounts: the gross the payer
    paid when inclusive, the net before tax when exclusive. A plain `(description, amount, quantity)` tuple works."""

    description: str
    amount: int
    quantity: int = 1


def invoice_number(year: int, sequence: int) -> str:
    """`INV-2026-000001`: six digits, more past the millionth invoice of a year (they still sort within a year)."""
    return f"INV-{year}-{sequence:06d}"


class NoChanges:
    """advanced-alchemy's generic update and delete paths, refused (the database would refuse them too)."""

    async def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def update_many(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def upsert(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def upsert_many(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def get_or_upsert(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def get_and_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def delete_many(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    async def delete_where(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()


class InvoiceRepository(NoChanges, SQLAlchemyAsyncRepository[Invoice]):
    model_type = Invoice


def _refuse() -> NoReturn:
    raise InvoiceImmutable("An issued invoice or credit note can not be changed or deleted; issue a credit note")


DocumentT = TypeVar("DocumentT", Invoice, CreditNote)
RepositoryT = TypeVar("RepositoryT", bound=SQLAlchemyAsyncRepository[Any])


class IssuedDocuments(NoChanges, ConfiguredService[DocumentT, RepositoryT]):
    """What invoices and credit notes share once issued: found by what they document, by their owner (another
    user's is as missing as one that does not exist: `missing`, a 404), listed newest first."""

    missing: ClassVar[type[DomainError]]

    def _model(self) -> type[DocumentT]:
        return self.repository.model_type

    async def by_reference(self, source_reference: str) -> DocumentT | None:
        """The document of a payment (a refund, a dispute), if it has one."""
        model = self._model()
        return (
            await self._session.scalars(select(model).where(model.source_reference == source_reference))
        ).one_or_none()

    async def owned(self, user_id: uuid.UUID, document_id: uuid.UUID) -> DocumentT:
        model = self._model()
        query = select(model).where(model.id == document_id, model.user_id == user_id)
        document = (await self._session.scalars(query)).one_or_none()
        if document is None:
            raise self.missing
        return document

    async def load(self, document_id: uuid.UUID) -> DocumentT | None:
        model = self._model()
        return (await self._session.scalars(select(model).where(model.id == document_id))).one_or_none()

    async def list_for(self, user_id: uuid.UUID, *, limit: int, offset: int) -> tuple[Sequence[DocumentT], int]:
        model = self._model()
        mine = model.user_id == user_id
        rows = await self._session.scalars(
            select(model).where(mine).order_by(model.issued_at.desc(), model.id.desc()).limit(limit).offset(offset)
        )
        total = await self._session.scalar(select(func.count()).select_from(model).where(mine))
        return rows.all(), total or 0


class InvoiceService(IssuedDocuments[Invoice, InvoiceRepository]):
    """Joins the caller's transaction: an invoice (and its number, and its mail) exists if and only if the
    transaction that recorded the payment commits. `issue` is the only way in; nothing changes one."""

    repository_type = InvoiceRepository
    missing = InvoiceNotFound

    async def create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("Invoices are issued with InvoiceService.issue, which numbers them")

    async def create_many(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("Invoices are issued with InvoiceService.issue, which numbers them")

    async def issue(
        self,
        *,
        user_id: uuid.UUID,
        kind: InvoiceKind | str,
        source_reference: str,
        lines: Sequence[LineItem | tuple[str, int, int]],
        currency: str,
        country: str | None = None,
        rate: AppliedRate | None = None,
        mode: TaxMode | None = None,
        now: datetime | None = None,
    ) -> Invoice:
        """Issue the invoice of one payment, numbered `INV-<year>-<n>` in the year of `now` (UTC), and request
        the job that mails it. A `source_reference` invoiced before answers that invoice (nothing new, no mail);
        for another user or kind it is 409 `invoice_reference_conflict`.

        Tax: `rate` when the payment was quoted at one (`TaxService.quote(...).rate`), else the rate of `country`
        (ISO 3166-1 alpha-2), else of TAX_DEFAULT_COUNTRY; a rate whose basis is not `charged` invoices at 0 and
        says where the tax is charged. Line amounts read as `mode` says (the payment's quote), else TAX_MODE.

        Call it last in the transaction: from here to the commit, every other invoice of the year waits for this
        one (that wait is what makes the numbers gapless), and locks taken after it could deadlock."""
        kind = InvoiceKind(kind)
        items = _checked(lines, source_reference, currency)
        if (existing := await self.by_reference(source_reference)) is not None:
            return _same_payment(existing, user_id, kind)
        buyer = await self._session.scalar(select(User.email).where(User.id == user_id))
        if buyer is None:
            raise UserNotFound(f"No user {user_id} to invoice")
        rate = rate or await TaxService(self._session, settings=self.settings).rate_for(country)
        issued_at = (now or utcnow()).astimezone(UTC)
        year = issued_at.year
        await _INVOICE_NUMBERS.lock(self._session, year)
        # Under the year's lock: a twin issuing for the same payment has committed by now, or it has not begun.
        if (existing := await self.by_reference(source_reference)) is not None:
            return _same_payment(existing, user_id, kind)
        sequence = await _INVOICE_NUMBERS.next(self._session, year)
        invoice = Invoice(
            id=uuid7(),
            number=invoice_number(year, sequence),
            year=year,
            sequence=sequence,
            user_id=user_id,
            kind=kind.value,
            source_reference=source_reference,
            currency=currency,
            buyer_email=buyer,
            seller_name=self.settings.invoice_seller_name,
            seller_address=self.settings.invoice_seller_address,
            seller_tax_id=self.settings.invoice_seller_tax_id,
            issued_at=issued_at,
        )
        _add_lines(invoice, items, rate, mode or TaxMode(self.settings.tax_mode))
        self._session.add(invoice)
        await self._session.flush()
        await OutboxService(session=self._session).request(EmailInvoice(invoice_id=invoice.id))
        logger.info("invoice_issued", invoice=invoice.number, user_id=str(user_id), kind=kind.value)
        return invoice


def _checked(lines: Sequence[LineItem | tuple[str, int, int]], reference: str, currency: str) -> list[LineItem]:
    """The lines as LineItems; a ValueError names what is wrong (these come from our code, not from a client)."""
    if not 0 < len(reference) <= REFERENCE_MAX:
        raise ValueError(f"a source reference takes 1-{REFERENCE_MAX} characters")
    if currency not in MINOR_UNITS:
        raise ValueError(f"unknown currency {currency!r}")
    if not 0 < len(lines) <= LINES_MAX:
        raise ValueError(f"an invoice has 1-{LINES_MAX} lines, not {len(lines)}")
    items = [LineItem(*line) for line in lines]
    for item in items:
        if not 0 < len(item.description.strip()) <= DESCRIPTION_MAX:
            raise ValueError(f"a line's description takes 1-{DESCRIPTION_MAX} characters")
        for name, value in (("amount", item.amount), ("quantity", item.quantity)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"a line's {name} is a positive whole number, not {value!r}")
    return items


def _same_payment(existing: Invoice, user_id: uuid.UUID, kind: InvoiceKind) -> Invoice:
    if (existing.user_id, existing.kind) != (user_id, kind.value):
        raise InvoiceReferenceConflict(f"{existing.source_reference!r} is invoiced as {existing.number} already")
    logger.info("invoice_already_issued", invoice=existing.number)
    return existing


def _add_lines(invoice: Invoice, items: list[LineItem], rate: AppliedRate, mode: TaxMode) -> None:
    """The lines, tax and totals: each line taxed on its own, so every line and the totals add up exactly."""
    invoice.lines = []
    for position, item in enumerate(items, start=1):
        split = apply_tax(item.amount * item.quantity, rate.rate_bps, mode)
        invoice.lines.append(
            InvoiceLine(
                id=uuid7(),
                invoice_id=invoice.id,
                position=position,
                description=item.description.strip(),
                quantity=item.quantity,
                unit_amount=item.amount,
                net=split.net,
                tax=split.tax,
                gross=split.gross,
            )
        )
    invoice.country, invoice.tax_mode = rate.country, mode.value
    invoice.tax_name, invoice.tax_rate_bps, invoice.tax_basis = rate.name, rate.rate_bps, rate.basis.value
    invoice.net_total = sum(line.net for line in invoice.lines)
    invoice.tax_total = sum(line.tax for line in invoice.lines)
    invoice.gross_total = sum(line.gross for line in invoice.lines)
