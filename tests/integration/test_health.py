"""Liveness always answers; readiness checks the database and Redis and names what failed."""

from __future__ import annotations

from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.app import create_app
from tests.conftest import serve_in_loop
from tests.support.databases import REDIS_URL, make_settings

DEAD_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/namaskah"
DEAD_REDIS = "redis://127.0.0.1:1/0"


async def test_live(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {}}


async def test_ready_checks_database_and_redis(stub_broker: StubBroker) -> None:
    app = create_app(make_settings(REDIS_URL=REDIS_URL), broker=stub_broker)
    async with serve_in_loop(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_ready_is_503_when_database_is_down(stub_broker: StubBroker) -> None:
    settings = make_settings(DATABASE_URL=DEAD_POSTGRES, READY_TIMEOUT="1")
    app = create_app(settings, engine=create_async_engine(DEAD_POSTGRES), broker=stub_broker)
    async with serve_in_loop(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["database"] != "ok"
    assert "database" in body["detail"]


async def test_ready_is_503_when_redis_is_down(stub_broker: StubBroker) -> None:
    app = create_app(make_settings(REDIS_URL=DEAD_REDIS, READY_TIMEOUT="1"), broker=stub_broker)
    async with serve_in_loop(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "redis": body["checks"]["redis"]}
    assert body["checks"]["redis"] != "ok"
    assert body["detail"] == "Unavailable: redis"
