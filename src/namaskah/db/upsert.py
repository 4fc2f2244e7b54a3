"""INSERT ... ON CONFLICT DO NOTHING in the dialect of the session's database (PostgreSQL in production, SQLite
in dev mode): the race-free way to create a row that a concurrent twin may be creating too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert


def insert_or_skip(session: AsyncSession, model: type[Any], conflict: Sequence[str], **values: Any) -> Insert:
    """The statement; its result's rowcount is 0 when a row with the same `conflict` columns already existed."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    if dialect == "sqlite":
        return sqlite.insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    raise RuntimeError(f"INSERT ... ON CONFLICT is written for PostgreSQL and SQLite only, not {dialect}")
