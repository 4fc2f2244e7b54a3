"""INSERT ... ON CONFLICT DO NOTHING in the dialect of the session's database (PostgreSQL in production, SQLite
in dev mode): the race-free way to create a row that a concurrent twin may be creating too."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert


def insert_or_skip(session: AsyncSession, model: type[Any], conflict: Sequence[str], **values: Any) -> Insert:
    """The statement; its result's rowcount is 0 when a row with the same `conflict` columns already existed."""
    return insert_or_skip_into(session, model.__table__, tuple(conflict)).values(**values)


def insert_or_skip_into(
    session: AsyncSession, table: Table, conflict: tuple[str, ...], returning: tuple[str, ...] = ()
) -> Insert:
    """The same statement with its values bound at execution (`session.execute(statement, values)`), built once
    per table and dialect: a hot path then pays neither for building it nor for its cache key."""
    return _statement(session.get_bind().dialect.name, table, conflict, returning)


@cache
def _statement(dialect: str, table: Table, conflict: tuple[str, ...], returning: tuple[str, ...]) -> Insert:
    if dialect == "postgresql":
        statement: Insert = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    else:
        raise RuntimeError(f"INSERT ... ON CONFLICT is written for PostgreSQL and SQLite only, not {dialect}")
    return statement.returning(*(table.c[name] for name in returning)) if returning else statement
