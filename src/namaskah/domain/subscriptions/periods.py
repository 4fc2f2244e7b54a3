"""Monthly periods on a calendar anchor, and the ledger references of a subscription's periods."""

from __future__ import annotations

import calendar
import uuid
from datetime import UTC, datetime


def add_month(moment: datetime, anchor: datetime) -> datetime:
    """The month after `moment`, on the anchor's day of the month (the last day of a shorter month) at the anchor's
    time: an anchor of 31 January gives 28 (or 29) February, then 31 March, never drifting to the 28th."""
    moment, anchor = moment.astimezone(UTC), anchor.astimezone(UTC)
    # Months counted from year 0 with January as 0: `moment`'s is year * 12 + month - 1, the next one is one more.
    year, zero_based = divmod(moment.year * 12 + moment.month, 12)
    month = zero_based + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def charge_reference(subscription_id: uuid.UUID, period: int) -> str:
    """The ledger reference of a period's price, and its invoice's source reference."""
    return f"subscription:{subscription_id}:{period}"


def credit_reference(subscription_id: uuid.UUID, period: int) -> str:
    """The ledger reference of the credit a period includes."""
    return f"subscription:{subscription_id}:{period}:credit"
