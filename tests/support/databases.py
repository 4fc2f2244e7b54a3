"""PostgreSQL and Redis for the test suite: a migrated template database and throwaway copies of it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from namaskah.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
# Per run, so that two runs on one machine (a developer's and CI's) never share a database.
RUN_ID = f"{os.getpid()}"
TEMPLATE_DB = f"namaskah_test_template_{RUN_ID}"
SHARED_DB = f"namaskah_test_{RUN_ID}"


def database_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def settings_env(**overrides: str) -> dict[str, str]:
    """The environment the suite runs the service with: PostgreSQL, JSON logs, no background sweeper."""
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url(SHARED_DB),
        "OUTBOX_SWEEP_INTERVAL": "0",
        "VERIFICATION_EXPIRY_SWEEP_INTERVAL": "0",  # tests that want the sweeper turn it on
        "RENTAL_SWEEP_INTERVAL": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "DATA_DIR": str(ROOT / "var" / "test"),
        # Cheap argon2id for speed; one test raises them to check hashes get upgraded at login.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "8192",
        "ARGON2_PARALLELISM": "1",
    }
    env.update(overrides)
    return env


def make_settings(**overrides: str) -> Settings:
    return load_settings(settings_env(**overrides), env_file=None)


def clean_environ(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Namaskah setting, plus `env`."""
    names = {field.upper() for field in Settings.__struct_fields__}
    merged = {k: v for k, v in os.environ.items() if k not in names}
    merged.update(env)
    return merged


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `namaskah` command."""
    return subprocess.run(
        [sys.executable, "-m", "namaskah", *args],
        env=clean_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


async def _connect(url_text: str) -> asyncpg.Connection:
    url = make_url(url_text)
    return await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
    )


async def _admin(statement: str) -> None:
    conn = await _connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def query_value(database: str, sql: str) -> object:
    """One value from a database, from synchronous test code (end-to-end tests look at what processes wrote)."""

    async def fetch() -> object:
        conn = await _connect(database)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(fetch())


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def create_database(name: str, template: str | None = None) -> None:
    await drop_database(name)
    await _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
