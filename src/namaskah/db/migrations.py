"""Alembic, through advanced-alchemy, pointed at the project's `migrations/` folder."""

from __future__ import annotations

from pathlib import Path

from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.extensions.litestar import AlembicAsyncConfig, SQLAlchemyAsyncConfig

from namaskah.db.engine import create_engine
from namaskah.settings import Settings

VERSION_TABLE = "alembic_versions"


def migrations_dir() -> Path:
    """Inside a built wheel they ship as `namaskah/_migrations`; in a checkout they are the top-level folder."""
    packaged = Path(__file__).resolve().parent.parent / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "migrations"


def alembic_commands(settings: Settings) -> AlembicCommands:
    config = SQLAlchemyAsyncConfig(
        engine_instance=create_engine(settings),
        alembic_config=AlembicAsyncConfig(
            script_config="",
            script_location=str(migrations_dir()),
            version_table_name=VERSION_TABLE,
            render_as_batch=True,
            compare_type=True,
        ),
    )
    return AlembicCommands(sqlalchemy_config=config)


def upgrade(settings: Settings, revision: str = "heads") -> None:
    """Apply migrations; runs its own event loop, so call it from synchronous code."""
    if settings.effective_database_url.startswith("sqlite"):
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    alembic_commands(settings).upgrade(revision)
