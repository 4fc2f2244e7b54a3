"""End-to-end fixtures: real processes talking to a database and a Redis namespace of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import REDIS_URL, settings_env
from tests.support.processes import Process, Server, start_server, start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def service_env(isolated_database: str, redis_namespace: str) -> dict[str, str]:
    """What a production deployment would set, pointed at this test's database and Redis namespace."""
    return settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=REDIS_URL,
        DRAMATIQ_NAMESPACE=redis_namespace,
    )


@pytest.fixture
def server(service_env: dict[str, str], log_dir: Path) -> Iterator[Server]:
    running = start_server(service_env, log_dir)
    yield running
    running.process.stop()


@pytest.fixture
def worker(service_env: dict[str, str], log_dir: Path) -> Iterator[Process]:
    running = start_worker(service_env, log_dir)
    yield running
    running.stop()
