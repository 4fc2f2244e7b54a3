"""INSERT ... ON CONFLICT DO NOTHING in the dialect of the session's database (PostgreSQL in production, SQLite
in dev mode): the race-free way to create a row that a concurrent twin may be creating too."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

# advanced-alchemy's bases add this column for SQLAlchemy's bulk inserts; nothing of ours sets it.
_SKIPPED = frozenset({"sa_orm_sentinel"})


def insert_or_skip(session: AsyncSession, model: type[Any], conflict: Sequence[str], **values: Any) -> Insert:
    """The statement; its result's rowcount is 0 when a row with the same `conflict` columns already existed."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    if dialect == "sqlite":
        return sqlite.insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    raise RuntimeError(f"INSERT ... ON CONFLICT is written for PostgreSQL and SQLite only, not {dialect}")


@cache
def insert_or_skip_into(table: Table, conflict: tuple[str, ...]) -> TextClause:
    """The same statement for every column of `table`, values bound at execution (`session.execute(statement,
    values)`). SQLAlchemy 2.0 compiles a dialect `insert().on_conflict_do_nothing()` anew on every execution (it
    has no cache key); this text, typed by the columns and written in the syntax PostgreSQL and SQLite share, is
    compiled once, which is what a hot path wants."""
    columns = [column for column in table.columns if column.key not in _SKIPPED]
    names = ", ".join(column.name for column in columns)
    values = ", ".join(f":{column.key}" for column in columns)
    # Names come from the table's metadata, never from input; every value is a bound parameter.
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({values}) ON CONFLICT ({', '.join(conflict)}) DO NOTHING"  # noqa: S608
    return text(sql).bindparams(*(bindparam(column.key, type_=column.type) for column in columns))
