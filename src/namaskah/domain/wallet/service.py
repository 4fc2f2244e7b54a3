"""Booking money: balanced ledger transactions, idempotent on their reference, that never take a wallet below zero."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import column_values, rowcount
from namaskah.db.service import Service
from namaskah.db.upsert import insert_or_skip, insert_or_skip_into
from namaskah.domain.accounts.models import User
from namaskah.domain.admin.service import UserNotFound
from namaskah.domain.audit.service import AuditService
from namaskah.domain.wallet.models import (
    DESCRIPTION_MAX,
    REFERENCE_MAX,
    SYSTEM_ACCOUNT_IDS,
    EntryKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    SystemAccount,
)
from namaskah.domain.webhooks.events import wallet_credited
from namaskah.lib.errors import DomainError
from namaskah.lib.logging import get_logger
from namaskah.lib.money import CURRENCY

logger = get_logger(__name__)

_TRANSACTIONS: Table = LedgerTransaction.__table__  # type: ignore[assignment]
_ENTRIES: Table = LedgerEntry.__table__  # type: ignore[assignment]
_ACCOUNTS: Table = LedgerAccount.__table__  # type: ignore[assignment]
# A wallet's balance moves in one statement that also numbers the entry; a debit only while it stays >= 0.
_CREDIT = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.user_id == bindparam("wallet_user_id"))
    .values(balance=_ACCOUNTS.c.balance + bindparam("change"), last_sequence=_ACCOUNTS.c.last_sequence + 1)
    .returning(_ACCOUNTS.c.id, _ACCOUNTS.c.last_sequence, _ACCOUNTS.c.balance)
)
_DEBIT = _CREDIT.where(_ACCOUNTS.c.balance + bindparam("change") >= 0)
_INSERT_ENTRIES = insert(_ENTRIES)

# Which kinds take money out of a wallet and which put it in, and the system account on the other side.
DEBITS: dict[EntryKind, SystemAccount] = {
    EntryKind.PURCHASE: SystemAccount.REVENUE,
    EntryKind.RENTAL: SystemAccount.REVENUE,
    EntryKind.TOPUP_REFUND: SystemAccount.PAYSTACK_CLEARING,
    EntryKind.DISPUTE_FREEZE: SystemAccount.DISPUTES,
    EntryKind.SUBSCRIPTION: SystemAccount.SUBSCRIPTIONS,
}
CREDITS: dict[EntryKind, SystemAccount] = {
    EntryKind.REFUND: SystemAccount.REFUNDS,
    EntryKind.RENTAL_REFUND: SystemAccount.REFUNDS,
    EntryKind.TOPUP: SystemAccount.PAYSTACK_CLEARING,
    EntryKind.GRANT: SystemAccount.GRANTS,
    EntryKind.DISPUTE_RELEASE: SystemAccount.DISPUTES,
    EntryKind.SUBSCRIPTION_CREDIT: SystemAccount.INCLUDED_CREDITS,
}


class InsufficientCredits(DomainError):
    status_code = 402
    code = "insufficient_credits"
    title = "Insufficient credits"


class ReferenceConflict(DomainError):
    status_code = 409
    code = "reference_conflict"
    title = "Reference already used"


@dataclass(frozen=True, slots=True)
class Booking:
    """A booked transaction and the wallet's entry in it. `created` is False when the reference had been booked
    before (by this call's twin): nothing changed now, and the entry is the one booked then."""

    transaction: LedgerTransaction
    entry: LedgerEntry
    created: bool


class LedgerAccountRepository(SQLAlchemyAsyncRepository[LedgerAccount]):
    model_type = LedgerAccount


class WalletService(Service[LedgerAccount, LedgerAccountRepository]):
    """Every change joins the caller's transaction: a booking is written if and only if that transaction commits."""

    repository_type = LedgerAccountRepository

    async def balance_of(self, user_id: uuid.UUID) -> int:
        """The wallet's balance in minor units of CURRENCY; 0 for a user who never had one."""
        query = select(LedgerAccount.balance).where(LedgerAccount.user_id == user_id)
        return (await self._session.scalar(query)) or 0

    async def debit(
        self, user_id: uuid.UUID, amount: int, *, kind: EntryKind, reference: str, description: str | None = None
    ) -> Booking:
        """Take `amount` (> 0) from the wallet for a purchase or a rental; 402 `insufficient_credits` (and nothing
        written) when the balance does not cover it. A `reference` booked before answers that booking."""
        if kind not in DEBITS:
            raise ValueError(f"{kind!r} is not a debit")
        _require_positive(amount)
        return await self._book(
            user_id, -amount, kind=kind, reference=reference, counterpart=DEBITS[kind], description=description
        )

    async def credit(
        self, user_id: uuid.UUID, amount: int, *, kind: EntryKind, reference: str, description: str | None = None
    ) -> Booking:
        """Add `amount` (> 0) to the wallet (a refund, a top-up, a grant), opening it if need be. A `reference`
        booked before answers that booking."""
        if kind not in CREDITS:
            raise ValueError(f"{kind!r} is not a credit")
        _require_positive(amount)
        booking = await self._book(
            user_id, amount, kind=kind, reference=reference, counterpart=CREDITS[kind], description=description
        )
        await wallet_credited(self._session, user_id, booking)
        return booking

    async def grant(self, user_id: uuid.UUID, amount: int, *, reason: str, reference: str) -> Booking:
        """An operator's credit to a user, recorded in the audit log (once, even when the reference repeats)."""
        reason = reason.strip()
        if await self._session.scalar(select(User.id).where(User.id == user_id)) is None:
            raise UserNotFound
        booking = await self.credit(user_id, amount, kind=EntryKind.GRANT, reference=reference, description=reason)
        if booking.created:
            await AuditService(self._session).record(
                "wallet.credits.granted",
                subject_type="user",
                subject_id=user_id,
                after={
                    "amount": amount,
                    "currency": booking.transaction.currency,
                    "reason": reason,
                    "reference": reference,
                    "balance_after": booking.entry.balance_after,
                },
            )
            logger.info("credits_granted", user_id=str(user_id), amount=amount, reference=reference)
        return booking

    async def history(
        self, user_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[tuple[LedgerEntry, LedgerTransaction]], int]:
        """The wallet's entries with their transactions, newest first."""
        mine = (LedgerAccount.user_id == user_id,)
        rows = await self._session.execute(
            select(LedgerEntry, LedgerTransaction)
            .join(LedgerTransaction, LedgerEntry.transaction_id == LedgerTransaction.id)
            .join(LedgerAccount, LedgerEntry.account_id == LedgerAccount.id)
            .where(*mine)
            .order_by(LedgerEntry.sequence.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self._session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .join(LedgerAccount, LedgerEntry.account_id == LedgerAccount.id)
            .where(*mine)
        )
        return rows.tuples().all(), total or 0

    async def _book(
        self,
        user_id: uuid.UUID,
        change: int,
        *,
        kind: EntryKind,
        reference: str,
        counterpart: SystemAccount,
        description: str | None,
    ) -> Booking:
        if not 0 < len(reference) <= REFERENCE_MAX or len(description or "") > DESCRIPTION_MAX:
            raise ValueError(f"a reference takes 1-{REFERENCE_MAX} characters, a description at most {DESCRIPTION_MAX}")
        session, now = self._session, utcnow()
        # Core statements built once, no unit of work: a booking sits on every purchase's hot path.
        transaction = LedgerTransaction(
            id=uuid7(),
            reference=reference,
            kind=kind.value,
            amount=abs(change),
            currency=CURRENCY,
            description=description,
            created_at=now,
        )
        # The reference goes in first: a concurrent twin waits here on the unique index until this transaction
        # ends, then finds the reference taken, so it answers "already booked" and never touches the balance.
        inserted = await session.execute(insert_or_skip_into(_TRANSACTIONS, ("reference",)), column_values(transaction))
        if not rowcount(inserted):
            return await self._booked(reference, user_id, change, kind)
        moved = await self._move(user_id, change)
        if moved is None:
            # Leave nothing behind, whether the caller rolls back or carries on with its transaction.
            await session.execute(delete(LedgerTransaction).where(LedgerTransaction.id == transaction.id))
            raise InsufficientCredits(f"This needs {abs(change)} {CURRENCY} minor units; the balance is lower")
        wallet_id, sequence, balance_after = moved
        entry = LedgerEntry(
            id=uuid7(),
            transaction_id=transaction.id,
            account_id=wallet_id,
            amount=change,
            sequence=sequence,
            balance_after=balance_after,
            created_at=now,
        )
        other_side = LedgerEntry(
            id=uuid7(),
            transaction_id=transaction.id,
            account_id=SYSTEM_ACCOUNT_IDS[counterpart],
            amount=-change,
            sequence=None,
            balance_after=None,
            created_at=now,
        )
        await session.execute(_INSERT_ENTRIES, [column_values(entry), column_values(other_side)])
        return Booking(transaction=transaction, entry=entry, created=True)

    async def _move(self, user_id: uuid.UUID, change: int) -> tuple[uuid.UUID, int, int] | None:
        """Apply `change` to the wallet in one conditional UPDATE (its row lock orders concurrent bookings); None
        when a debit does not fit. The CHECK on the column stands behind the condition."""
        values = {"wallet_user_id": user_id, "change": change}
        query = _DEBIT if change < 0 else _CREDIT
        row = (await self._session.execute(query, values)).one_or_none()
        if row is None and change > 0:
            await self._open_wallet(user_id)
            row = (await self._session.execute(query, values)).one_or_none()
        if row is None:
            return None
        wallet_id, sequence, balance = row
        return wallet_id, sequence, balance

    async def _open_wallet(self, user_id: uuid.UUID) -> None:
        """Create the wallet unless it exists; concurrent first credits create exactly one."""
        await self._session.execute(
            insert_or_skip(
                self._session,
                LedgerAccount,
                ["user_id"],
                id=uuid7(),
                user_id=user_id,
                currency=CURRENCY,
                balance=0,
                last_sequence=0,
            )
        )

    async def _booked(self, reference: str, user_id: uuid.UUID, change: int, kind: EntryKind) -> Booking:
        """The booking already made under `reference`, if it is this same one; else 409 `reference_conflict`."""
        row = (
            await self._session.execute(
                select(LedgerEntry, LedgerTransaction, LedgerAccount.user_id)
                .join(LedgerTransaction, LedgerEntry.transaction_id == LedgerTransaction.id)
                .join(LedgerAccount, LedgerEntry.account_id == LedgerAccount.id)
                .where(LedgerTransaction.reference == reference, LedgerAccount.user_id.is_not(None))
            )
        ).one_or_none()
        if row is None or (row[2], row[0].amount, row[1].kind) != (user_id, change, kind.value):
            raise ReferenceConflict(f"The reference {reference!r} was already booked for something else")
        logger.info("ledger_reference_already_booked", reference=reference)
        return Booking(transaction=row[1], entry=row[0], created=False)


def _require_positive(amount: int) -> None:
    """A negative debit would be a credit in disguise: refuse it loudly (a bug in the caller, not user input)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"a booking moves a positive whole number of minor units, not {amount!r}")
