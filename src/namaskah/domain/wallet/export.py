"""The wallet's history as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from namaskah.domain.wallet.schemas import WalletTransaction
from namaskah.lib.money import to_decimal_text

HEADER = (
    "id",
    "created_at",
    "kind",
    "reference",
    "amount",
    "amount_decimal",
    "balance_after",
    "balance_after_decimal",
    "currency",
)
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def text_cell(value: str) -> str:
    """Text as a spreadsheet will show it and never evaluate it: a leading quote disarms a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def render_csv(items: Iterable[WalletTransaction]) -> str:
    """One row per entry; amounts in minor units and as decimals (numbers, so left as they are)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for item in items:
        writer.writerow(
            (
                str(item.id),
                item.created_at.isoformat(),
                text_cell(item.kind),
                text_cell(item.reference),
                item.amount,
                to_decimal_text(item.amount, item.currency),
                item.balance_after,
                to_decimal_text(item.balance_after, item.currency),
                text_cell(item.currency),
            )
        )
    return buffer.getvalue()
