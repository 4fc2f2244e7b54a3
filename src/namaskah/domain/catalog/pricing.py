"""What a caller pays: provider cost, converted to our currency, times our markup, less their tier's discount."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import msgspec

from namaskah.lib.errors import DomainError
from namaskah.lib.money import CURRENCY, MINOR_UNITS

BPS = Decimal(10_000)


class ExchangeRates(msgspec.Struct, frozen=True):
    """Units of our currency per unit of a provider's currency (`{"USD": Decimal("1600")}`)."""

    rates: dict[str, Decimal]

    def rate(self, currency: str) -> Decimal:
        if currency == CURRENCY:
            return Decimal(1)
        if currency not in self.rates:
            raise UnknownCurrency(currency)
        return self.rates[currency]


class UnknownCurrency(DomainError):
    """A provider priced in a currency we have no rate for: FX_RATES must name it before it is sold."""

    status_code = 503
    code = "pricing_unavailable"
    title = "Price not available"

    def __init__(self, currency: str) -> None:
        super().__init__(f"No exchange rate for {currency}: set FX_RATES (e.g. {currency}=1600)")


def price_minor(cost: Decimal, currency: str, *, markup_bps: int, discount_bps: int, rates: ExchangeRates) -> int:
    """The price in minor units of our currency, rounded down (in the customer's favour), never below one unit:
    the ledger books no zero amounts."""
    major = cost * rates.rate(currency) * Decimal(markup_bps) / BPS * (BPS - Decimal(discount_bps)) / BPS
    minor = (major * MINOR_UNITS[CURRENCY]).to_integral_value(rounding=ROUND_FLOOR)
    return max(int(minor), 1)
