"""Reconciliation's response and request bodies for operators."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.reconciliation.models import ReconciliationDifference


class DifferenceRead(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    reference: str
    window_start: datetime
    window_end: datetime
    paystack_status: str | None
    paystack_amount: int | None
    paystack_currency: str | None
    our_status: str | None
    our_amount: int | None
    our_currency: str | None
    detail: str
    found_at: datetime
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    resolution_note: str | None

    @classmethod
    def of(cls, row: ReconciliationDifference) -> DifferenceRead:
        return cls(**{name: getattr(row, name) for name in cls.__struct_fields__})


class DifferenceList(msgspec.Struct, frozen=True):
    items: list[DifferenceRead]
    total: int


class DifferenceResolve(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
