"""Registration, login, /v1/me, and refresh-token rotation with reuse detection, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.domain.accounts.models import RefreshToken, User
from namaskah.lib.security.tokens import AccessTokenCodec
from tests.conftest import serve_in_loop
from tests.support.databases import make_settings

PASSWORD = "violet-harbour-lantern-7"


async def register(client: AsyncClient, email: str = "ada@example.com", password: str = PASSWORD):
    return await client.post("/v1/auth/register", json={"email": email, "password": password})


async def login(client: AsyncClient, email: str = "ada@example.com", password: str = PASSWORD):
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def signed_in(client: AsyncClient) -> dict:
    assert (await register(client)).status_code == 201
    response = await login(client)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_normalises_the_email(client: AsyncClient) -> None:
    response = await register(client, email="  Ada@Example.COM ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert body["tier"] == "free"
    assert set(body) == {"id", "email", "tier"}


async def test_email_is_unique_whatever_its_case(client: AsyncClient) -> None:
    assert (await register(client)).status_code == 201
    response = await register(client, email="ADA@example.com")
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short1!", "10"),
        ("ada@example.com", "email"),
        ("ADA@EXAMPLE.COM", "email"),
        ("qwertyuiop", "common"),
        ("QwertyUIOP", "common"),
    ],
)
async def test_weak_passwords_are_refused(client: AsyncClient, password: str, rule: str) -> None:
    response = await register(client, password=password)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "weak_password"
    assert rule in body["detail"].lower()
    assert password not in response.text


async def test_malformed_email_is_a_validation_error(client: AsyncClient) -> None:
    response = await register(client, email="not-an-email")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


async def test_login_and_me(client: AsyncClient) -> None:
    tokens = await signed_in(client)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("rt_")
    response = await client.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["email"] == "ada@example.com"
    assert (me["tier"], me["balance"], me["currency"], me["totp_enabled"]) == ("free", 0, "NGN", False)


async def test_wrong_password_and_unknown_email_look_the_same(client: AsyncClient) -> None:
    await register(client)
    wrong = await login(client, password="not-the-password-at-all")
    unknown = await login(client, email="nobody@example.com")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_me_needs_a_bearer_token(client: AsyncClient) -> None:
    response = await client.get("/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def forged_tokens(client: AsyncClient, app: Litestar) -> dict[str, str]:
    tokens = await signed_in(client)
    real: AccessTokenCodec = app.state.token_codec
    claims = real.decode(tokens["access_token"])
    settings = make_settings()
    other = {"secret": "x" * 40, "issuer": settings.jwt_issuer, "audience": settings.jwt_audience, "ttl_seconds": 900}
    header, payload, _ = tokens["access_token"].split(".")
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong key": AccessTokenCodec(**other).issue(claims.sub)[0],
        "expired": real.issue(claims.sub, now=datetime.now(UTC) - timedelta(hours=2))[0],
        "wrong audience": AccessTokenCodec(
            secret=settings.secret_key, issuer=settings.jwt_issuer, audience="someone-else", ttl_seconds=900
        ).issue(claims.sub)[0],
        "wrong issuer": AccessTokenCodec(
            secret=settings.secret_key, issuer="evil", audience=settings.jwt_audience, ttl_seconds=900
        ).issue(claims.sub)[0],
        "tampered": f"{header}.{_b64({**json.loads(base64.urlsafe_b64decode(payload + '==')), 'sub': 'x'})}.sig",
        "garbage": "not.a.jwt",
    }


async def test_forged_access_tokens_are_401(client: AsyncClient, app: Litestar) -> None:
    for name, token in (await forged_tokens(client, app)).items():
        response = await client.get("/v1/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert response.json()["code"] == "invalid_token", name


async def test_refresh_rotates_and_reuse_revokes_the_family(client: AsyncClient) -> None:
    first = await signed_in(client)
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/v1/me", headers=bearer(second["access_token"]))).status_code == 200

    reused = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["code"] == "refresh_reused"
    # The thief's replay killed the legitimate successor too.
    after = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_refresh_token"


async def test_logout_revokes_the_session(client: AsyncClient) -> None:
    tokens = await signed_in(client)
    response = await client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    again = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401
    unknown = await client.post("/v1/auth/logout", json={"refresh_token": "rt_never_issued_token"})
    assert unknown.status_code == 204


async def test_refresh_tokens_are_stored_hashed(client: AsyncClient, session_factory) -> None:
    tokens = await signed_in(client)
    async with session_factory() as session:
        stored = (await session.scalars(select(RefreshToken.token_hash))).all()
    assert len(stored) == 1
    assert tokens["refresh_token"] not in stored[0]
    assert len(stored[0]) == 64


async def test_login_upgrades_the_hash_when_parameters_change(
    client: AsyncClient, session_factory: async_sessionmaker[AsyncSession], stub_broker: StubBroker
) -> None:
    await register(client)
    async with session_factory() as session:
        old_hash = await session.scalar(select(User.password_hash))
    stronger = make_settings(ARGON2_TIME_COST="2", ARGON2_MEMORY_COST="16384")
    app = create_app(stronger, session_factory=session_factory, broker=stub_broker)
    async with serve_in_loop(app) as upgraded:
        assert (await login(upgraded)).status_code == 200
    async with session_factory() as session:
        new_hash = await session.scalar(select(User.password_hash))
    assert old_hash is not None
    assert new_hash is not None
    assert "m=8192,t=1" in old_hash
    assert "m=16384,t=2" in new_hash
    assert (await login(client)).status_code == 200


async def test_concurrent_refreshes_with_one_token_succeed_once(isolated_database: str, stub_broker) -> None:
    app = create_app(make_settings(DATABASE_URL=isolated_database), broker=stub_broker)
    async with serve_in_loop(app) as client:
        tokens = await signed_in(client)
        body = {"refresh_token": tokens["refresh_token"]}
        responses = await asyncio.gather(*(client.post("/v1/auth/refresh", json=body) for _ in range(5)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 401, 401, 401, 401]
        codes = [r.json()["code"] for r in responses if r.status_code == 401]
        # The first replay revokes the family; later ones find the token revoked.
        assert "refresh_reused" in codes
        assert set(codes) <= {"refresh_reused", "invalid_refresh_token"}
        winner = next(r.json() for r in responses if r.status_code == 200)
        successor = await client.post("/v1/auth/refresh", json={"refresh_token": winner["refresh_token"]})
        assert successor.status_code == 401


async def test_a_disabled_account_cannot_refresh(client: AsyncClient, session_factory) -> None:
    tokens = await signed_in(client)
    async with session_factory() as session:
        await session.execute(update(User).values(is_active=False))
        await session.commit()
    response = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"
    assert (await client.get("/v1/me", headers=bearer(tokens["access_token"]))).status_code == 401
