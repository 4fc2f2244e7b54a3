"""`/v1/billing/invoices`: the caller's invoices, and each one's PDF (its owner only; anyone else gets 404)."""

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
from namaskah.domain.invoices.document import PDF, filename, pdf_of
from namaskah.domain.invoices.errors import InvoiceNotFound
from namaskah.domain.invoices.schemas import InvoiceList, InvoiceRead
from namaskah.domain.invoices.service import InvoiceService
from namaskah.lib.pagination import Limit, Offset


def provide_invoices(db_session: NamedDependency[AsyncSession], state: State) -> InvoiceService:
    return InvoiceService(session=db_session, settings=state.settings)


def _invoice_id(document: str) -> uuid.UUID:
    """`<uuid>.pdf` (a path parameter cannot end in a suffix); anything else is an invoice we do not have."""
    stem, dot, suffix = document.rpartition(".")
    try:
        if dot and suffix == "pdf":
            return uuid.UUID(stem)
    except ValueError:
        pass
    raise InvoiceNotFound


class InvoiceController(Controller):
    path = "/v1/billing/invoices"
    tags = ["billing"]
    dependencies = {**account_dependencies, "invoices": Provide(provide_invoices, sync_to_thread=False)}

    @get("/", summary="The caller's invoices, newest first")
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
        "/{document:str}", summary="One of the caller's invoices as PDF: /v1/billing/invoices/{id}.pdf", media_type=PDF
    )
    async def download(
        self, document: FromPath[str], principal: NamedDependency[Principal], invoices: NamedDependency[InvoiceService]
    ) -> Response[bytes]:
        principal.require(Scope.WALLET_READ)
        invoice = InvoiceRead.of(await invoices.owned(principal.user.id, _invoice_id(document)))
        return Response(
            await pdf_of(invoice),
            media_type=PDF,
            headers={"Content-Disposition": f'attachment; filename="{filename(invoice)}"', "Cache-Control": "private"},
        )
