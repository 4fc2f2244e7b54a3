"""`/v1/wallet`: the caller's balance and history (JSON and CSV); `/v1/admin/users/{id}/credits`: operator grants."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from uuid_utils.compat import uuid7

from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.wallet.deps import admin_wallet_dependencies, wallet_dependencies
from namaskah.domain.wallet.export import render_csv
from namaskah.domain.wallet.schemas import (
    CreditGrant,
    CreditGranted,
    WalletRead,
    WalletTransaction,
    WalletTransactionList,
)
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.idempotency import IdempotencyKey
from namaskah.lib.money import CURRENCY
from namaskah.lib.pagination import Limit, Offset

# A statement export may be long; past this, page with `offset` (the total is in X-Total-Count).
CSV_MAX_ROWS = 10_000
CsvLimit = Annotated[int, QueryParameter(name="limit", ge=1, le=CSV_MAX_ROWS)]


class WalletController(Controller):
    path = "/v1/wallet"
    tags = ["wallet"]
    dependencies = wallet_dependencies

    @get("/", summary="The caller's balance, in minor units")
    async def show(self, principal: NamedDependency[Principal], wallet: NamedDependency[WalletService]) -> WalletRead:
        principal.require(Scope.WALLET_READ)
        return WalletRead(balance=await wallet.balance_of(principal.user.id), currency=CURRENCY)

    @get("/transactions", summary="The caller's ledger entries, newest first")
    async def transactions(
        self,
        principal: NamedDependency[Principal],
        wallet: NamedDependency[WalletService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> WalletTransactionList:
        principal.require(Scope.WALLET_READ)
        rows, total = await wallet.history(principal.user.id, limit=limit, offset=offset)
        return WalletTransactionList(items=[WalletTransaction.of(*row) for row in rows], total=total)

    @get("/transactions.csv", summary="The caller's ledger entries as CSV, newest first", media_type="text/csv")
    async def transactions_csv(
        self,
        principal: NamedDependency[Principal],
        wallet: NamedDependency[WalletService],
        limit: CsvLimit = CSV_MAX_ROWS,
        offset: Offset = 0,
    ) -> Response[str]:
        principal.require(Scope.WALLET_READ)
        rows, total = await wallet.history(principal.user.id, limit=limit, offset=offset)
        return Response(
            render_csv(WalletTransaction.of(*row) for row in rows),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="wallet-transactions.csv"',
                "X-Total-Count": str(total),
            },
        )


class AdminCreditController(Controller):
    path = "/v1/admin/users/{user_id:uuid}/credits"
    tags = ["admin"]
    dependencies = admin_wallet_dependencies

    @post("/", status_code=HTTP_201_CREATED, summary="Grant credits to a user (audited)")
    async def grant(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[CreditGrant],
        operator: NamedDependency[User],
        admin_wallet: NamedDependency[WalletService],
        idempotency_key: IdempotencyKey = None,
    ) -> CreditGranted:
        # With an Idempotency-Key, a retried grant (a double click, a timeout) answers the first one, once.
        reference = f"grant:{operator.id}:{idempotency_key}" if idempotency_key else f"grant:{uuid7()}"
        booking = await admin_wallet.grant(user_id, data.amount, reason=data.reason, reference=reference)
        entry, transaction = booking.entry, booking.transaction
        return CreditGranted(
            id=entry.id,
            user_id=user_id,
            amount=entry.amount,
            currency=transaction.currency,
            balance_after=entry.balance_after or 0,
            kind=transaction.kind,
            reference=transaction.reference,
            reason=transaction.description or data.reason,
            created_at=entry.created_at,
        )
