"""Request limits per principal and tier, shared through Redis, with RateLimit-* headers; Redis down fails open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from litestar import Litestar
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import VENDOR_WEBHOOKS, create_app
from namaskah.domain.accounts.models import Tier, User
from namaskah.domain.accounts.ratelimits import enforce_rate_limit
from namaskah.domain.admin.service import AdminUserService
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.lib.stamps import StampBook
from tests.conftest import serve_in_loop
from tests.support.databases import REDIS_URL, make_settings

PASSWORD = "violet-harbour-lantern-7"


@pytest.fixture
async def redis_client(
    session_factory: async_sessionmaker[AsyncSession], stub_broker: StubBroker, redis_namespace: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=redis_namespace)
    async with serve_in_loop(create_app(settings, session_factory=session_factory, broker=stub_broker)) as client:
        yield client


async def access_token(client: httpx.AsyncClient, email: str) -> str:
    assert (await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})).status_code == 201
    response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    return str(response.json()["access_token"])


async def test_limited_routes_carry_the_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/me")
    assert response.status_code == 401
    assert response.headers["ratelimit-limit"] == "60"
    assert int(response.headers["ratelimit-remaining"]) == 59
    assert 1 <= int(response.headers["ratelimit-reset"]) <= 60
    assert "ratelimit-limit" not in (await client.get("/health/live")).headers


async def test_anonymous_callers_are_limited_per_ip(client: httpx.AsyncClient) -> None:
    for _ in range(60):
        assert (await client.get("/v1/me")).status_code == 401
    response = await client.get("/v1/me")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "rate_limited"
    assert response.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_free_tier_limit_is_per_user_and_shared_through_redis(redis_client: httpx.AsyncClient) -> None:
    ada, bob = await access_token(redis_client, "ada@example.com"), await access_token(redis_client, "bob@example.com")
    for remaining in range(9, -1, -1):
        response = await redis_client.get("/v1/me", headers={"Authorization": f"Bearer {ada}"})
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "10"
        assert response.headers["ratelimit-remaining"] == str(remaining)
    limited = await redis_client.get("/v1/me", headers={"Authorization": f"Bearer {ada}"})
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert (await redis_client.get("/v1/me", headers={"Authorization": f"Bearer {bob}"})).status_code == 200


async def test_tier_change_applies_at_once(
    redis_client: httpx.AsyncClient, session_factory, redis_namespace: str
) -> None:
    token = await access_token(redis_client, "ada@example.com")
    for _ in range(3):  # the API process now holds a cached copy of ada
        first = await redis_client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert first.headers["ratelimit-limit"] == "10"
    # Another process (a worker, an operator's request elsewhere) moves ada to pro.
    redis = Redis.from_url(REDIS_URL)
    relay = OutboxRelay(session_factory, StubBroker(), StampBook(redis, namespace=redis_namespace))
    async with session_factory() as session:
        ada = await session.scalar(select(User).where(User.email == "ada@example.com"))
        assert ada is not None
        await AdminUserService(session=session).update_user(ada.id, tier=Tier.PRO)
        await relay.commit(session)
    await redis.aclose()
    second = await redis_client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert second.headers["ratelimit-limit"] == "100"
    assert second.headers["ratelimit-remaining"] == "96"
    assert second.json()["tier"] == "pro"


async def test_redis_down_fails_open_and_is_counted(session_factory, stub_broker: StubBroker) -> None:
    settings = make_settings(REDIS_URL="redis://127.0.0.1:1/0", READY_TIMEOUT="1")
    before = REGISTRY.get_sample_value("rate_limiter_errors_total") or 0.0
    async with serve_in_loop(create_app(settings, session_factory=session_factory, broker=stub_broker)) as client:
        for _ in range(65):
            assert (await client.get("/v1/me")).status_code == 401
    assert (REGISTRY.get_sample_value("rate_limiter_errors_total") or 0.0) - before == 65


async def test_operators_get_the_enterprise_limit(client: httpx.AsyncClient, session_factory) -> None:
    token = await access_token(client, "ops@example.com")
    async with session_factory() as session:
        await session.execute(text("UPDATE users SET role = 'operator' WHERE email = 'ops@example.com'"))
        await session.commit()
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.headers["ratelimit-limit"] == "500"


def test_every_v1_route_is_rate_limited(app: Litestar) -> None:
    # A controller that set its own before_request would silently replace the limit: Litestar keeps only one.
    # Vendors' signed webhooks are the exception, on purpose (see namaskah.app.VENDOR_WEBHOOKS).
    vendor_paths = {controller.path for controller in VENDOR_WEBHOOKS}
    assert vendor_paths == {"/v1/webhooks/paystack", "/v1/providers/textverified/events"}
    handlers = [
        (route.path, handler)
        for route in app.routes
        if route.path.startswith("/v1")
        for handler in getattr(route, "route_handlers", [])
    ]
    assert len(handlers) > 10
    limited = {h.resolve_before_request() for path, h in handlers if path not in vendor_paths}
    assert limited == {enforce_rate_limit}
    assert {h.resolve_before_request() for path, h in handlers if path in vendor_paths} == {None}
