"""The tax split of credit notes: against every small invoice and many random refund sequences, each note adds up
(net + tax = gross, none negative), the notes never add up to more than the invoice's net, tax or gross, and a full
refund lands on it exactly; whatever asks past the invoice is capped."""

from __future__ import annotations

import random

from namaskah.domain.invoices.credit_notes import NOTHING, credit_split
from namaskah.domain.tax.calc import TaxMode, TaxSplit, apply_tax


def refunded(invoice: TaxSplit, asks: list[int]) -> list[TaxSplit]:
    notes, credited = [], NOTHING
    for ask in asks:
        note = credit_split(invoice, credited, ask)
        assert note.net + note.tax == note.gross
        assert min(note) >= 0
        credited = TaxSplit(*(a + b for a, b in zip(credited, note, strict=True)))
        assert credited.net <= invoice.net
        assert credited.tax <= invoice.tax
        assert credited.gross <= invoice.gross
        notes.append(note)
    return notes


def test_every_small_invoice_refunded_a_kobo_at_a_time_or_in_random_parts() -> None:
    rng = random.Random(6)
    for gross in range(1, 80):
        for tax in range(gross + 1):
            invoice = TaxSplit(gross - tax, tax, gross)
            assert sum(n.tax for n in refunded(invoice, [1] * gross)) == tax
            asks = [rng.randint(1, gross) for _ in range(rng.randint(1, 6))] + [gross]
            notes = refunded(invoice, asks)
            assert TaxSplit(*(sum(parts) for parts in zip(*notes, strict=True))) == invoice  # the last ask caps


def test_real_rates_on_large_amounts() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        invoice = apply_tax(rng.randint(1, 10**12), rng.choice((0, 500, 750, 1_000, 2_500)), rng.choice(list(TaxMode)))
        asks = [rng.randint(1, invoice.gross // 3 + 1) for _ in range(rng.randint(1, 10))]
        refunded(invoice, asks)


def test_a_full_refund_is_the_invoice_and_anything_after_it_nothing() -> None:
    invoice = apply_tax(500_000, 750, TaxMode.INCLUSIVE)
    assert credit_split(invoice, NOTHING, 10**9) == invoice
    assert credit_split(invoice, invoice, 1) == NOTHING
