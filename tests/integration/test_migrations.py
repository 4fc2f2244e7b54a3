"""The migrations build exactly the schema the models describe, on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from namaskah.db.migrations import VERSION_TABLE
from namaskah.db.models import metadata
from tests.support.databases import run_cli, settings_env


def _diff(connection: Connection, *, compare_type: bool = True) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": compare_type, "render_as_batch": True, "version_table": VERSION_TABLE}
    )
    return list(compare_metadata(context, metadata))


async def test_models_and_migrations_agree_on_postgresql(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == []


def test_sqlite_goes_from_empty_to_head_and_back(tmp_path: Path) -> None:
    env = settings_env(DATABASE_URL="", DATA_DIR=str(tmp_path))
    upgraded = run_cli("database", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    sqlite = create_engine(f"sqlite:///{tmp_path / 'namaskah.sqlite3'}")
    with sqlite.connect() as connection:
        assert set(metadata.tables) <= set(inspect(connection).get_table_names())
        # SQLite reflects types by affinity (a UUID's BINARY(16) reads back as NUMERIC): compare all but types.
        assert _diff(connection, compare_type=False) == []
    downgraded = run_cli("database", "downgrade", "base", env=env)
    assert downgraded.returncode == 0, downgraded.stderr
    with sqlite.connect() as connection:
        assert set(inspect(connection).get_table_names()) == {"alembic_versions"}
    sqlite.dispose()
