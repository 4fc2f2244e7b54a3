"""The hash chain: entries are staged on the session and appended just before it commits, one commit at a time."""

from __future__ import annotations

import hashlib

import msgspec
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from namaskah.domain.audit.models import GENESIS_HASH, HEAD_ID, AuditChainHead, AuditLog

STAGED_KEY = "namaskah.audit.staged"
_canonical = msgspec.json.Encoder(order="sorted")


def entry_hash(entry: AuditLog) -> str:
    """SHA-256 over a canonical JSON of everything the entry says, its sequence and prev_hash included."""
    content = {
        "id": entry.id,
        "sequence": entry.sequence,
        "occurred_at": entry.occurred_at,
        "actor_type": entry.actor_type,
        "actor_user_id": entry.actor_user_id,
        "actor_api_key_id": entry.actor_api_key_id,
        "action": entry.action,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "request_id": entry.request_id,
        "before": entry.before,
        "after": entry.after,
        "prev_hash": entry.prev_hash,
    }
    return hashlib.sha256(_canonical.encode(content)).hexdigest()


def stage(session: AsyncSession, entry: AuditLog) -> None:
    """Keep `entry` for this session's next commit, tied to the (sub)transaction it belongs to."""
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    sync.info.setdefault(STAGED_KEY, []).append((transaction, entry))


@event.listens_for(Session, "before_commit")
def _append_staged(session: Session) -> None:
    # Appending at commit rather than at record time holds the head's lock only for the final flush and COMMIT,
    # and takes it after every other lock of the transaction, so audited transactions cannot deadlock on it.
    if session.in_nested_transaction():
        return  # a savepoint is released: its entries wait for the real commit
    staged: list[tuple[SessionTransaction | None, AuditLog]] | None = session.info.pop(STAGED_KEY, None)
    if not staged:
        return
    entries = [entry for _, entry in staged]
    session.flush()
    last, prev_hash = _advance_head(session, len(entries))
    for sequence, entry in enumerate(entries, start=last - len(entries) + 1):
        entry.sequence = sequence
        entry.prev_hash = prev_hash
        entry.hash = prev_hash = entry_hash(entry)
    session.add_all(entries)
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(hash=prev_hash)
        .execution_options(synchronize_session=False)
    )


def _advance_head(session: Session, count: int) -> tuple[int, str]:
    """Reserve `count` sequence numbers; the UPDATE's row lock (a write lock on SQLite) serialises appenders,
    and it returns the latest committed hash even when it had to wait for another appender."""
    query = (
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(sequence=AuditChainHead.sequence + count)
        .returning(AuditChainHead.sequence, AuditChainHead.hash)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(query).one_or_none()
    if row is None:
        # The migration seeds the head; a schema made with create_all has none yet.
        session.add(AuditChainHead(id=HEAD_ID, sequence=0, hash=GENESIS_HASH))
        session.flush()
        row = session.execute(query).one()
    return int(row.sequence), str(row.hash)


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    staged = session.info.get(STAGED_KEY)
    if staged:
        session.info[STAGED_KEY] = [(t, e) for t, e in staged if not _within(t, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _forget_on_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(STAGED_KEY, None)  # committed (already appended), rolled back or closed


def _within(transaction: SessionTransaction | None, rolled_back: SessionTransaction) -> bool:
    if rolled_back.parent is None:
        return True  # the whole transaction is gone
    current = transaction
    while current is not None:
        if current is rolled_back:
            return True
        current = current.parent
    return False


class ChainReport(msgspec.Struct, frozen=True):
    ok: bool
    count: int
    head_hash: str
    broken_sequence: int | None = None
    broken_id: str | None = None
    reason: str | None = None


async def verify_chain(session: AsyncSession, *, batch_size: int = 1000) -> ChainReport:
    """Walk the entries in sequence order, recomputing every hash; stop at the first one that does not fit.

    The head is read first and the walk stops at its sequence: every entry up to it is committed, whatever the
    isolation level, and entries appended meanwhile are left for the next run."""
    head = await session.get(AuditChainHead, HEAD_ID)
    query = select(AuditLog).order_by(AuditLog.sequence).execution_options(yield_per=batch_size)
    if head is not None:
        query = query.where(AuditLog.sequence <= head.sequence)
    expected_prev, count = GENESIS_HASH, 0
    async for entry in await session.stream_scalars(query):
        reason = _fault(entry, count + 1, expected_prev)
        if reason is not None:
            return ChainReport(
                ok=False,
                count=count,
                head_hash=expected_prev,
                broken_sequence=entry.sequence,
                broken_id=str(entry.id),
                reason=reason,
            )
        expected_prev, count = entry.hash, count + 1
    if head is not None and (head.sequence, head.hash) != (count, expected_prev):
        return ChainReport(
            ok=False,
            count=count,
            head_hash=expected_prev,
            broken_sequence=count + 1,
            reason=f"the log ends at sequence {count} but its head records sequence {head.sequence}",
        )
    return ChainReport(ok=True, count=count, head_hash=expected_prev)


def _fault(entry: AuditLog, expected_sequence: int, expected_prev: str) -> str | None:
    if entry.sequence != expected_sequence:
        return f"entry {expected_sequence} is missing before it"
    if entry.prev_hash != expected_prev:
        return "its prev_hash is not the previous entry's hash"
    if entry_hash(entry) != entry.hash:
        return "its content does not match its hash"
    return None
