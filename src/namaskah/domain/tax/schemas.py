"""Bodies of the operator tax-rate routes, and the country code every tax input is checked against."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from namaskah.domain.tax.models import MAX_RATE_BPS, TAX_NAME_MAX, TaxRate

COUNTRY_PATTERN = r"^[A-Z]{2}$"
Country = Annotated[str, msgspec.Meta(pattern=COUNTRY_PATTERN, description="ISO 3166-1 alpha-2, upper case")]


class TaxRateRead(msgspec.Struct, frozen=True):
    country: str
    name: str
    rate_bps: int
    updated_at: datetime

    @classmethod
    def of(cls, rate: TaxRate) -> TaxRateRead:
        return cls(country=rate.country, name=rate.name, rate_bps=rate.rate_bps, updated_at=rate.updated_at)


class TaxRateList(msgspec.Struct, frozen=True):
    items: list[TaxRateRead]
    total: int


class TaxRatePut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole rate of a country: created if the country had none, replaced otherwise."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=TAX_NAME_MAX, pattern=r"^\S(.*\S)?$")]
    rate_bps: Annotated[int, msgspec.Meta(ge=0, le=MAX_RATE_BPS)]
