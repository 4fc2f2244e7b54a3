"""The comparison itself, free of I/O: Paystack's transactions against our top-ups and ledger credits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from namaskah.domain.billing.models import TopupStatus
from namaskah.domain.billing.paystack_schemas import Transaction
from namaskah.domain.reconciliation.models import DifferenceKind

# Our top-up still waits for a payment (or saw it fail) although Paystack took the money.
_UNPAID = frozenset({TopupStatus.INITIALIZING.value, TopupStatus.PENDING.value, TopupStatus.FAILED.value})


class TopupFact(msgspec.Struct, frozen=True):
    status: str
    amount: int
    currency: str


class CreditFact(msgspec.Struct, frozen=True):
    """A top-up credit in the ledger (`paystack:<reference>`, kind topup)."""

    amount: int
    currency: str


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    kind: DifferenceKind
    reference: str
    detail: str
    paystack_status: str | None = None
    paystack_amount: int | None = None
    paystack_currency: str | None = None
    our_status: str | None = None
    our_amount: int | None = None
    our_currency: str | None = None


def compare(
    paystack: Mapping[str, Transaction], topups: Mapping[str, TopupFact], credits: Mapping[str, CreditFact]
) -> list[Finding]:
    """Every difference, ordered by reference then kind. `paystack` holds the window's transactions plus what
    verify said about each credited reference the listing lacked, so a phantom is a credit with no success there."""
    findings: list[Finding] = []
    for reference, tx in paystack.items():
        if tx.status == "success":
            findings.extend(_paid(tx, topups.get(reference), credits.get(reference)))
    for reference, credit in credits.items():
        listed = paystack.get(reference)
        if listed is None or listed.status != "success":
            seen = "no transaction" if listed is None else f"status {listed.status}"
            findings.append(
                _finding(
                    DifferenceKind.PHANTOM,
                    reference,
                    f"credited {credit.amount} {credit.currency} in the ledger; Paystack has {seen}",
                    listed,
                    topups.get(reference),
                    credit,
                )
            )
    return sorted(findings, key=lambda f: (f.reference, f.kind.value))


def _paid(tx: Transaction, topup: TopupFact | None, credit: CreditFact | None) -> Iterable[Finding]:
    currency = tx.currency.upper()
    # What we booked, or (uncredited because the billing flow found a mismatch) what we initialised.
    ours: CreditFact | TopupFact | None = credit
    if credit is None and topup is not None and topup.status == TopupStatus.MISMATCH.value:
        ours = topup
    if ours is None:
        yield _finding(
            DifferenceKind.MISSED,
            tx.reference,
            f"Paystack reports success for {tx.amount} {currency}; no credit in the ledger",
            tx,
            topup,
            None,
        )
    else:
        side = "credited" if credit is not None else "initialised"
        if ours.amount != tx.amount:
            detail = f"Paystack reports {tx.amount}; we {side} {ours.amount}"
            yield _finding(DifferenceKind.AMOUNT, tx.reference, detail, tx, topup, ours)
        if ours.currency.upper() != currency:
            detail = f"Paystack reports {currency}; we {side} {ours.currency}"
            yield _finding(DifferenceKind.CURRENCY, tx.reference, detail, tx, topup, ours)
    if topup is not None and topup.status in _UNPAID:
        detail = f"Paystack reports success; our top-up is {topup.status}"
        yield _finding(DifferenceKind.STATUS, tx.reference, detail, tx, topup, credit)


def _finding(  # noqa: PLR0917 - one private constructor, the same six facts at every call
    kind: DifferenceKind,
    reference: str,
    detail: str,
    tx: Transaction | None,
    topup: TopupFact | None,
    ours: CreditFact | TopupFact | None,
) -> Finding:
    return Finding(
        kind=kind,
        reference=reference,
        detail=detail[:500],
        paystack_status=tx.status[:16] if tx else None,
        paystack_amount=tx.amount if tx else None,
        paystack_currency=tx.currency.upper()[:3] if tx else None,
        our_status=topup.status if topup else None,
        our_amount=ours.amount if ours else (topup.amount if topup else None),
        our_currency=ours.currency if ours else (topup.currency if topup else None),
    )
