"""Money as integer minor units (kobo) with an ISO 4217 currency: the one currency and its decimal rendering."""

from __future__ import annotations

# Every wallet and price is in naira today; the column is there so another currency is a data change, not a schema one.
CURRENCY = "NGN"
# Minor units per major unit, by currency (ISO 4217 exponent 2 for all we sell in).
MINOR_UNITS = {"NGN": 100}


def to_decimal_text(amount: int, currency: str = CURRENCY) -> str:
    """`-123456` kobo as `-1234.56`: exact integer arithmetic, never a float."""
    per_major = MINOR_UNITS[currency]
    digits = len(str(per_major)) - 1
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), per_major)
    return f"{sign}{major}.{minor:0{digits}d}" if digits else f"{sign}{major}"


def format_money(amount: int, currency: str = CURRENCY) -> str:
    """`123456` kobo as `NGN 1,234.56`, for documents: grouped by thousands, from minor units by integer arithmetic."""
    text = to_decimal_text(amount, currency)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    major, dot, minor = digits.partition(".")
    return f"{currency} {sign}{int(major):,}{dot}{minor}"
