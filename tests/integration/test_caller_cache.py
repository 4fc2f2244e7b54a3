"""The per-process caller cache: it really serves repeat requests, and a change made anywhere applies at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.domain.accounts.models import User
from namaskah.domain.admin.service import AdminUserService
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.lib.stamps import StampBook
from tests.conftest import serve_in_loop
from tests.support.databases import REDIS_URL, make_settings

PASSWORD = "violet-harbour-lantern-7"
Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve(session_factory: async_sessionmaker[AsyncSession], redis_namespace: str) -> Serve:
    """An API process on the test database and a shared Redis namespace; call it twice for two processes."""

    def start(**overrides: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = make_settings(**{"REDIS_URL": REDIS_URL, "DRAMATIQ_NAMESPACE": redis_namespace, **overrides})
        return serve_in_loop(create_app(settings, session_factory=session_factory, broker=StubBroker()))

    return start


@pytest.fixture
async def two(serve: Serve) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with serve() as first, serve() as second:
        yield first, second


async def sign_up(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, str]:
    assert (await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})).status_code == 201
    tokens = (await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def new_key(client: httpx.AsyncClient, session: dict[str, str]) -> tuple[str, dict[str, str]]:
    created = await client.post("/v1/api-keys", json={"name": "shop", "scopes": ["wallet:read"]}, headers=session)
    assert created.status_code == 201, created.text
    return created.json()["id"], {"X-API-Key": created.json()["key"]}


async def warm(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """The first request learns whose credential it is, the second caches the caller, the third uses the copy."""
    for _ in range(3):
        response = await client.get("/v1/me", headers=headers)
        assert response.status_code == 200, response.text


async def edit_behind_its_back(session_factory: async_sessionmaker[AsyncSession], statement: str) -> None:
    """A change no service made (raw SQL): no stamp is renewed, as when a renewal is lost during a Redis outage."""
    async with session_factory() as session:
        await session.execute(text(statement))
        await session.commit()


async def test_a_revoked_key_is_refused_at_once_by_a_process_that_cached_it(
    two: tuple[httpx.AsyncClient, httpx.AsyncClient], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, second = two
    session = await sign_up(first)
    key_id, key = await new_key(first, session)
    await warm(second, key)
    # Proof that the second process answers from its copy: a change made behind its back goes unseen.
    await edit_behind_its_back(session_factory, "UPDATE users SET email = 'renamed@example.com'")
    assert (await second.get("/v1/me", headers=key)).json()["email"] == "ada@example.com"

    assert (await first.delete(f"/v1/api-keys/{key_id}", headers=session)).status_code == 204
    for _ in range(3):  # (one at a time: the test's processes share one database connection)
        refused = await second.get("/v1/me", headers=key)
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid_api_key")


async def test_a_user_disabled_elsewhere_loses_their_sessions_at_once(
    two: tuple[httpx.AsyncClient, httpx.AsyncClient],
    session_factory: async_sessionmaker[AsyncSession],
    redis_namespace: str,
) -> None:
    first, second = two
    session = await sign_up(first)
    await warm(second, session)
    # A worker or a third process, sharing only the database and Redis.
    redis = Redis.from_url(REDIS_URL)
    relay = OutboxRelay(session_factory, StubBroker(), StampBook(redis, namespace=redis_namespace))
    async with session_factory() as db:
        ada = await db.scalar(select(User).where(User.email == "ada@example.com"))
        assert ada is not None
        await AdminUserService(session=db).update_user(ada.id, is_active=False)
        await relay.commit(db)
    await redis.aclose()
    assert (await second.get("/v1/me", headers=session)).status_code == 401


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:1/0", ""], ids=["redis-unreachable", "no-redis"])
async def test_without_stamps_nothing_is_served_from_the_cache(
    serve: Serve, session_factory: async_sessionmaker[AsyncSession], redis_url: str
) -> None:
    async with serve(REDIS_URL=redis_url, READY_TIMEOUT="1") as client:
        _, key = await new_key(client, await sign_up(client))
        await warm(client, key)
        await edit_behind_its_back(session_factory, "UPDATE api_keys SET revoked_at = now()")
        assert (await client.get("/v1/me", headers=key)).status_code == 401


async def test_the_cache_age_bounds_a_lost_renewal(
    serve: Serve, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with serve(CALLER_CACHE_SECONDS="0.5") as client:
        _, key = await new_key(client, await sign_up(client))
        await warm(client, key)
        await edit_behind_its_back(session_factory, "UPDATE users SET tier = 'pro'")
        assert (await client.get("/v1/me", headers=key)).json()["tier"] == "free"
        await asyncio.sleep(0.6)
        assert (await client.get("/v1/me", headers=key)).json()["tier"] == "pro"


async def test_a_tier_plan_change_reaches_cached_callers(
    serve: Serve, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with serve() as client:
        _, key = await new_key(client, await sign_up(client))
        await warm(client, key)
        operator = await sign_up(client, "ops@example.com")
        await edit_behind_its_back(session_factory, "UPDATE users SET role = 'operator' WHERE email LIKE 'ops@%'")
        changed = await client.patch("/v1/admin/tiers/free", json={"rate_limit_per_minute": 42}, headers=operator)
        assert changed.status_code == 200, changed.text
        assert (await client.get("/v1/me", headers=key)).headers["ratelimit-limit"] == "42"


async def test_a_lost_renewal_is_logged_and_counted_not_raised() -> None:
    before = REGISTRY.get_sample_value("stamp_renew_failures_total") or 0.0
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    await StampBook(redis, namespace="nowhere").renew(["caller:tiers", "caller:user:x"])
    await redis.aclose()
    assert (REGISTRY.get_sample_value("stamp_renew_failures_total") or 0.0) - before == 2
