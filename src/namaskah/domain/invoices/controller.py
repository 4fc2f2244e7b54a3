"""`/v1/billing/invoices` and `/v1/billing/credit-notes`: the caller's invoices and credit notes, and each one's PDF
(its owner only; anyone else gets 404)."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.invoices.credit_notes import CreditNoteService
from namaskah.domain.invoices.document import PDF, Document, filename, pdf_of
from namaskah.domain.invoices.errors import CreditNoteNotFound, InvoiceNotFound
from namaskah.domain.invoices.schemas import CreditNoteList, CreditNoteRead, InvoiceList, InvoiceRead
from namaskah.domain.invoices.service import InvoiceService
from namaskah.lib.errors import DomainError
from namaskah.lib.pagination import Limit, Offset


def provide_invoices(db_session: NamedDependency[AsyncSession], state: State) -> InvoiceService:
    return InvoiceService(session=db_session, settings=state.settings)


def provide_credit_notes(db_session: NamedDependency[AsyncSession], state: State) -> CreditNoteService:
    return CreditNoteService(session=db_session, settings=state.settings)


def _document_id(document: str, missing: type[DomainError] = InvoiceNotFound) -> uuid.UUID:
    """`<uuid>.pdf` (a path parameter cannot end in a suffix); anything else is a document we do not have."""
    stem, dot, suffix = document.rpartition(".")
    try:
        if dot and suffix == "pdf":
            return uuid.UUID(stem)
    except ValueError:
        pass
    raise missing


async def _pdf_response(document: Document) -> Response[bytes]:
    return Response(
        await pdf_of(document),
        media_type=PDF,
        headers={"Content-Disposition": f'attachment; filename="{filename(document)}"', "Cache-Control": "private"},
    )


class InvoiceController(Controller):
    # One controller for both kinds of document (they share the PDF machinery); the routes under it are
    # /invoices[...] as before, and /credit-notes[...].
    path = "/v1/billing"
    tags = ["billing"]
    dependencies = {
        **account_dependencies,
        "invoices": Provide(provide_invoices, sync_to_thread=False),
        "credit_notes": Provide(provide_credit_notes, sync_to_thread=False),
    }

    @get("/invoices", summary="The caller's invoices, newest first")
    async def list_invoices(
        self,
        principal: NamedDependency[Principal],
        invoices: NamedDependency[InvoiceService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> InvoiceList:
        principal.require(Scope.WALLET_READ)
        rows, total = await invoices.list_for(principal.user.id, limit=limit, offset=offset)
        return InvoiceList(items=[InvoiceRead.of(invoice) for invoice in rows], total=total)

    @get(
        "/invoices/{document:str}",
        summary="One of the caller's invoices as PDF: /v1/billing/invoices/{id}.pdf",
        media_type=PDF,
    )
    async def download(
        self, document: FromPath[str], principal: NamedDependency[Principal], invoices: NamedDependency[InvoiceService]
    ) -> Response[bytes]:
        principal.require(Scope.WALLET_READ)
        return await _pdf_response(InvoiceRead.of(await invoices.owned(principal.user.id, _document_id(document))))

    @get("/credit-notes", summary="The caller's credit notes (refunds, lost disputes), newest first")
    async def list_credit_notes(
        self,
        principal: NamedDependency[Principal],
        credit_notes: NamedDependency[CreditNoteService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> CreditNoteList:
        principal.require(Scope.WALLET_READ)
        rows, total = await credit_notes.list_for(principal.user.id, limit=limit, offset=offset)
        return CreditNoteList(items=[CreditNoteRead.of(note) for note in rows], total=total)

    @get(
        "/credit-notes/{document:str}",
        summary="One of the caller's credit notes as PDF: /v1/billing/credit-notes/{id}.pdf",
        media_type=PDF,
    )
    async def download_credit_note(
        self,
        document: FromPath[str],
        principal: NamedDependency[Principal],
        credit_notes: NamedDependency[CreditNoteService],
    ) -> Response[bytes]:
        principal.require(Scope.WALLET_READ)
        note = await credit_notes.owned(principal.user.id, _document_id(document, CreditNoteNotFound))
        return await _pdf_response(CreditNoteRead.of(note))
