"""The ledger references of a rental's charges and refunds: one per booking, so that a rerun books nothing twice."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

DAY = timedelta(days=1)


def charge_reference(rental_id: uuid.UUID) -> str:
    return f"rental:{rental_id}"


def refund_reference(rental_id: uuid.UUID) -> str:
    # The whole price back when the rental never started: one reference for every way it can fail.
    return f"rental:{rental_id}:refund"


def extend_reference(rental_id: uuid.UUID, n: int) -> str:
    return f"rental:{rental_id}:extend:{n}"


def release_reference(rental_id: uuid.UUID) -> str:
    return f"rental:{rental_id}:release"


def renew_reference(rental_id: uuid.UUID, ends_at: datetime) -> str:
    # Keyed on the end being renewed: a second sweep over the same end books nothing more.
    return f"rental:{rental_id}:renew:{ends_at.isoformat()}"


def unused_days(ends_at: datetime, now: datetime) -> int:
    """Whole days left; a started day is used."""
    return max(0, (ends_at - now) // DAY)
