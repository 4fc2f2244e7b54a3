"""`/v1/admin/billing/reconciliation`: operators list the differences reconciliation found and resolve them."""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.models import User
from namaskah.domain.admin.deps import admin_dependencies
from namaskah.domain.reconciliation.schemas import DifferenceList, DifferenceRead, DifferenceResolve
from namaskah.domain.reconciliation.service import ReconciliationService
from namaskah.lib.pagination import Limit, Offset


def provide_reconciliation(
    db_session: NamedDependency[AsyncSession], operator: NamedDependency[User]
) -> ReconciliationService:
    """Built from `operator`, like every admin service: no handler here runs for a caller who is not one."""
    return ReconciliationService(session=db_session)


class AdminReconciliationController(Controller):
    path = "/v1/admin/billing/reconciliation"
    tags = ["admin"]
    dependencies = {**admin_dependencies, "reconciliation": Provide(provide_reconciliation, sync_to_thread=False)}

    @get("/", summary="Differences between Paystack and the ledger, newest first; `resolved` filters them")
    async def list_differences(
        self,
        reconciliation: NamedDependency[ReconciliationService],
        resolved: FromQuery[bool | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> DifferenceList:
        rows, total = await reconciliation.page(limit=limit, offset=offset, resolved=resolved)
        return DifferenceList(items=[DifferenceRead.of(row) for row in rows], total=total)

    @post("/{difference_id:uuid}/resolve", status_code=HTTP_200_OK, summary="Mark a difference resolved, with a note")
    async def resolve(
        self,
        difference_id: FromPath[uuid.UUID],
        data: JSONBody[DifferenceResolve],
        reconciliation: NamedDependency[ReconciliationService],
        operator: NamedDependency[User],
    ) -> DifferenceRead:
        return DifferenceRead.of(await reconciliation.resolve(difference_id, operator.id, data.note))
