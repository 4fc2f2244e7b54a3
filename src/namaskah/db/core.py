"""Writing ORM-shaped rows with Core statements: for hot paths that do not need the unit of work."""

from __future__ import annotations

from typing import Any

# advanced-alchemy's bases add this column for SQLAlchemy's bulk inserts; nothing of ours sets it.
_SKIPPED = frozenset({"sa_orm_sentinel"})


def column_values(row: Any) -> dict[str, Any]:
    """The values of a transient ORM object for a Core INSERT into its table, every column once (unset
    attributes insert NULL, so set each column's default before calling this)."""
    return {
        column.key: getattr(row, column.key, None) for column in row.__table__.columns if column.key not in _SKIPPED
    }


def rowcount(result: object) -> int:
    """Rows a DML statement touched (0 for an INSERT ... ON CONFLICT DO NOTHING that met its twin); the generic
    Result type of `session.execute` does not declare it."""
    count: int = getattr(result, "rowcount", 0)
    return count
