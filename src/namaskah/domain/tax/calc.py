"""The tax arithmetic: split a gross amount (inclusive) or add tax to a net one (exclusive), in integer minor units.

Rounding rule, the only one in the code base: the one computed value is rounded to the nearest minor unit with
halves going up (commercial rounding, what tax offices expect; never banker's rounding), in integer arithmetic:

- inclusive: ``net = round(gross * 10000 / (10000 + bps))``, ``tax = gross - net``
- exclusive: ``tax = round(net * bps / 10000)``, ``gross = net + tax``

The third figure is always the difference of the other two, so ``net + tax == gross`` holds by construction.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

BPS = 10_000  # basis points in a whole: 750 bps is 7.5%


class TaxMode(StrEnum):
    """What an amount handed to us means: the price the buyer pays (inclusive) or the price before tax."""

    INCLUSIVE = "inclusive"
    EXCLUSIVE = "exclusive"


class TaxPoint(StrEnum):
    """Which payment is the taxable supply (TAX_POINT): the Paystack top-up, or the use of the credits (then a
    top-up is a prepayment, and subscriptions paid from the wallet carry the tax)."""

    PAYMENT = "payment"
    USAGE = "usage"


class TaxBasis(StrEnum):
    """Why a document shows the tax it does: charged here, or 0 here because it is charged elsewhere."""

    CHARGED = "charged"
    ON_TOPUPS = "on_topups"  # paid from wallet credits whose top-ups were taxed (TAX_POINT=payment)
    PREPAYMENT = "prepayment"  # a top-up under TAX_POINT=usage: the credits are taxed when they are used


class TaxSplit(NamedTuple):
    net: int
    tax: int
    gross: int


def round_half_up(numerator: int, denominator: int) -> int:
    """`numerator / denominator` to the nearest integer, halves up; both non-negative, denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


def apply_tax(amount: int, rate_bps: int, mode: TaxMode) -> TaxSplit:
    """Net, tax and gross of `amount` (minor units, >= 0) at `rate_bps` (0-10000): `amount` is the gross when
    `mode` is inclusive, the net when it is exclusive."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"tax applies to a non-negative whole number of minor units, not {amount!r}")
    if isinstance(rate_bps, bool) or not isinstance(rate_bps, int) or not 0 <= rate_bps <= BPS:
        raise ValueError(f"a tax rate is 0-{BPS} basis points, not {rate_bps!r}")
    if mode is TaxMode.INCLUSIVE:
        net = round_half_up(amount * BPS, BPS + rate_bps)
        return TaxSplit(net=net, tax=amount - net, gross=amount)
    tax = round_half_up(amount * rate_bps, BPS)
    return TaxSplit(net=amount, tax=tax, gross=amount + tax)


def percent_text(rate_bps: int) -> str:
    """`750` as `7.5%`, `1000` as `10%`, `1234` as `12.34%`: exact, for documents."""
    whole, part = divmod(rate_bps, 100)
    return f"{whole}%" if part == 0 else f"{whole}.{part:02d}".rstrip("0") + "%"
