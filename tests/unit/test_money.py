"""Money rendering and CSV cells: exact decimals from minor units, and text a spreadsheet will not evaluate."""

from __future__ import annotations

import pytest

from namaskah.domain.wallet.export import text_cell
from namaskah.lib.money import to_decimal_text


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (100, "1.00"), (-150, "-1.50"), (123_456_789, "1234567.89")],
)
def test_minor_units_render_as_exact_decimals(amount: int, text: str) -> None:
    assert to_decimal_text(amount) == text


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "|cmd", "%x"])
def test_formula_starts_are_disarmed(value: str) -> None:
    assert text_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["verification:1", "grant:abc", "", "a=b"])
def test_plain_text_is_left_alone(value: str) -> None:
    assert text_cell(value) == value
