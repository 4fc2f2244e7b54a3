"""Reconciliation's reads and writes: the facts a run compares, its findings stored once, operators' list and
resolution (audited)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, or_, select, update
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import rowcount
from namaskah.db.service import Service
from namaskah.db.upsert import insert_or_skip
from namaskah.domain.audit.service import Actor, AuditService
from namaskah.domain.billing.models import Topup
from namaskah.domain.reconciliation.compare import CreditFact, Finding, TopupFact
from namaskah.domain.reconciliation.models import ReconciliationDifference
from namaskah.domain.wallet.models import EntryKind, LedgerTransaction
from namaskah.lib.errors import DomainError

LEDGER_PREFIX = "paystack:"  # billing books a top-up under `paystack:<reference>`
_CHUNK = 500  # references per IN (...) query

_D = ReconciliationDifference


class DifferenceNotFound(DomainError):
    status_code = 404
    code = "reconciliation_difference_not_found"
    title = "No such reconciliation difference"


class DifferenceResolved(DomainError):
    status_code = 409
    code = "reconciliation_difference_resolved"
    title = "Already resolved"


class DifferenceRepository(SQLAlchemyAsyncRepository[ReconciliationDifference]):
    model_type = ReconciliationDifference


class ReconciliationService(Service[ReconciliationDifference, DifferenceRepository]):
    """Joins the caller's transaction."""

    repository_type = DifferenceRepository

    async def credits(self, references: Collection[str], since: datetime, until: datetime) -> dict[str, CreditFact]:
        """Top-up credits under `references` (whenever booked) and every one booked in [since, until)."""
        found: dict[str, CreditFact] = {}
        keys = [LEDGER_PREFIX + reference for reference in references]
        in_window = (LedgerTransaction.created_at >= since) & (LedgerTransaction.created_at < until)
        # The window's credits come with the first chunk (an empty chunk when Paystack listed nothing).
        # Paystack charged the credit plus any tax added on top (Topup.charged_amount - Topup.amount): compare that.
        surcharge = func.coalesce(Topup.charged_amount - Topup.amount, 0)
        for chunk in _chunks(keys) or [[]]:
            query = (
                select(LedgerTransaction.reference, LedgerTransaction.amount + surcharge, LedgerTransaction.currency)
                .outerjoin(Topup, LedgerTransaction.reference == LEDGER_PREFIX + Topup.reference)
                .where(
                    LedgerTransaction.kind == EntryKind.TOPUP.value,
                    or_(LedgerTransaction.reference.in_(chunk), in_window),
                )
            )
            for reference, amount, currency in await self._session.execute(query):
                found[reference.removeprefix(LEDGER_PREFIX)] = CreditFact(amount=amount, currency=currency)
        return found

    async def topups(self, references: Collection[str]) -> dict[str, TopupFact]:
        found: dict[str, TopupFact] = {}
        for chunk in _chunks(list(references)):
            # What Paystack was asked to charge (the credits plus any tax on top).
            query = select(Topup.reference, Topup.status, Topup.charged_amount, Topup.currency).where(
                Topup.reference.in_(chunk)
            )
            for reference, status, amount, currency in await self._session.execute(query):
                found[reference] = TopupFact(status=status, amount=amount, currency=currency)
        return found

    async def store(self, start: datetime, end: datetime, findings: Sequence[Finding]) -> list[Finding]:
        """Insert each finding unless this window already holds it; answers the new ones."""
        stored: list[Finding] = []
        now = utcnow()
        for finding in findings:
            values: dict[str, Any] = {
                name: getattr(finding, name) for name in finding.__struct_fields__ if name != "kind"
            }
            statement = insert_or_skip(
                self._session,
                ReconciliationDifference,
                ("window_start", "window_end", "reference", "kind"),
                id=uuid7(),
                window_start=start,
                window_end=end,
                kind=finding.kind.value,
                found_at=now,
                **values,
            )
            if rowcount(await self._session.execute(statement)):
                stored.append(finding)
        return stored

    async def open_count(self) -> int:
        return await self._session.scalar(select(func.count()).select_from(_D).where(_D.resolved_at.is_(None))) or 0

    async def page(
        self, *, limit: int, offset: int, resolved: bool | None = None
    ) -> tuple[Sequence[ReconciliationDifference], int]:
        where = [] if resolved is None else [_D.resolved_at.is_not(None) if resolved else _D.resolved_at.is_(None)]
        total = await self._session.scalar(select(func.count()).select_from(_D).where(*where)) or 0
        rows = await self._session.scalars(
            select(_D).where(*where).order_by(_D.found_at.desc(), _D.id.desc()).limit(limit).offset(offset)
        )
        return rows.all(), total

    async def resolve(self, difference_id: uuid.UUID, operator_id: uuid.UUID, note: str) -> ReconciliationDifference:
        """Mark it resolved once (a second resolve is 409), audited with the operator's note."""
        result = await self._session.execute(
            update(_D)
            .where(_D.id == difference_id, _D.resolved_at.is_(None))
            .values(resolved_at=utcnow(), resolved_by=operator_id, resolution_note=note)
        )
        row = await self._session.get(_D, difference_id, populate_existing=True)
        if row is None:
            raise DifferenceNotFound(f"No reconciliation difference {difference_id}")
        if not rowcount(result):
            raise DifferenceResolved("This difference was already resolved")
        await AuditService(self._session).record(
            "billing.reconciliation.resolved",
            subject_type="reconciliation_difference",
            subject_id=row.id,
            before={"resolved": False},
            after={"resolved": True, "kind": row.kind, "reference": row.reference, "note": note},
            actor=Actor.user(operator_id),
        )
        return row


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
