"""Catalog prices: conversion, markup and tier discount in exact decimals, rounded down to the minor unit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from namaskah.domain.catalog.pricing import ExchangeRates, UnknownCurrency, price_minor
from namaskah.domain.catalog.service import slug_of
from namaskah.settings import SettingsError, load_settings

RATES = ExchangeRates(rates={"USD": Decimal("1600")})


def test_cost_is_converted_marked_up_and_discounted() -> None:
    # $0.75 x 1600 = NGN 1200 x 1.5 = 1800 -> 180000 kobo; 10% off -> 162000.
    assert price_minor(Decimal("0.75"), "USD", markup_bps=15_000, discount_bps=0, rates=RATES) == 180_000
    assert price_minor(Decimal("0.75"), "USD", markup_bps=15_000, discount_bps=1_000, rates=RATES) == 162_000


def test_fractions_of_a_kobo_are_dropped_in_the_customers_favour() -> None:
    # NGN 1.00 cost, x 1.3333 = 1.3333 NGN = 133.33 kobo -> 133, never 134.
    assert price_minor(Decimal("1.00"), "NGN", markup_bps=13_333, discount_bps=0, rates=RATES) == 133
    # 0.999 kobo would round to 1 either way; a price below one unit is still one unit (the ledger books no 0).
    assert price_minor(Decimal("0.0001"), "USD", markup_bps=10_000, discount_bps=9_000, rates=RATES) == 1


def test_a_currency_without_a_rate_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        price_minor(Decimal(1), "EUR", markup_bps=10_000, discount_bps=0, rates=RATES)


def test_fx_rates_are_read_from_the_environment() -> None:
    settings = load_settings({"FX_RATES": "usd=1550.5, EUR=1700"}, env_file=None)
    assert settings.exchange_rates == {"USD": Decimal("1550.5"), "EUR": Decimal(1700)}


@pytest.mark.parametrize("bad", ["USD", "USD=abc", "USD=0", "DOLLAR=5", "USD=-3"])
def test_a_bad_fx_rate_stops_start_up(bad: str) -> None:
    with pytest.raises(SettingsError, match="FX_RATES"):
        load_settings({"FX_RATES": bad}, env_file=None)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("WhatsApp", "whatsapp"),
        ("WhatsApp Business", "whatsapp-business"),
        ("Yahoo! / AOL", "yahoo-aol"),
        ("$", "service"),
    ],
)
def test_slugs_are_stable_and_url_safe(name: str, slug: str) -> None:
    assert slug_of(name) == slug
