"""Partner API keys: shown once, stored hashed, scoped, revocable at once, and only ever their owner's."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from namaskah.domain.apikeys.models import ApiKey

PASSWORD = "violet-harbour-lantern-7"


async def session_headers(client: AsyncClient, email: str) -> dict[str, str]:
    await client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    tokens = (await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def create_key(client: AsyncClient, headers: dict[str, str], scopes: list[str]) -> dict:
    response = await client.post("/v1/api-keys", json={"name": "shop", "scopes": scopes}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_key_is_shown_once_and_stored_hashed(client: AsyncClient, session_factory) -> None:
    headers = await session_headers(client, "ada@example.com")
    created = await create_key(client, headers, ["wallet:read"])
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["prefix"].startswith("nsk_live_")
    listed = (await client.get("/v1/api-keys", headers=headers)).json()
    assert listed["total"] == 1
    assert "key" not in listed["items"][0]
    assert created["key"] not in str(listed)
    async with session_factory() as session:
        stored = await session.scalar(select(ApiKey))
    assert stored is not None
    assert created["key"] not in (stored.key_hash, stored.prefix)


async def test_key_acts_as_its_owner_within_its_scopes(client: AsyncClient) -> None:
    headers = await session_headers(client, "ada@example.com")
    key = (await create_key(client, headers, ["wallet:read"]))["key"]
    me = await client.get("/v1/me", headers={"X-API-Key": key})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "ada@example.com"
    assert me.headers["ratelimit-limit"] == "10"  # the owner's tier
    assert (await client.get("/v1/wallet", headers={"X-API-Key": key})).status_code == 200

    narrow = (await create_key(client, headers, ["rentals:read"]))["key"]
    refused = await client.get("/v1/wallet", headers={"X-API-Key": narrow})
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"


async def test_a_key_cannot_manage_keys(client: AsyncClient) -> None:
    headers = await session_headers(client, "ada@example.com")
    key = (await create_key(client, headers, list(SCOPES)))["key"]
    response = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["wallet:read"]}, headers={"X-API-Key": key}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


SCOPES = ("verifications:read", "verifications:write", "rentals:read", "rentals:write", "wallet:read", "webhooks:write")


async def test_revoked_key_stops_at_once(client: AsyncClient) -> None:
    headers = await session_headers(client, "ada@example.com")
    created = await create_key(client, headers, ["wallet:read"])
    assert (await client.get("/v1/me", headers={"X-API-Key": created["key"]})).status_code == 200
    assert (await client.delete(f"/v1/api-keys/{created['id']}", headers=headers)).status_code == 204
    refused = await client.get("/v1/me", headers={"X-API-Key": created["key"]})
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"
    assert (await client.get("/v1/api-keys", headers=headers)).json()["total"] == 0


@pytest.mark.parametrize("mangle", [lambda k: k[:-4] + "abcd", lambda k: "nsk_live_" + "0" * 12 + k[21:], str.upper])
async def test_wrong_keys_are_401(client: AsyncClient, mangle) -> None:
    headers = await session_headers(client, "ada@example.com")
    key = (await create_key(client, headers, ["wallet:read"]))["key"]
    response = await client.get("/v1/me", headers={"X-API-Key": mangle(key)})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


async def test_another_users_key_is_404(client: AsyncClient) -> None:
    ada = await session_headers(client, "ada@example.com")
    bob = await session_headers(client, "bob@example.com")
    created = await create_key(client, ada, ["wallet:read"])
    response = await client.delete(f"/v1/api-keys/{created['id']}", headers=bob)
    assert response.status_code == 404
    assert response.json()["code"] == "api_key_not_found"
    assert (await client.get("/v1/api-keys", headers=bob)).json() == {"items": [], "total": 0}
    assert (await client.get("/v1/me", headers={"X-API-Key": created["key"]})).status_code == 200


async def test_unknown_scope_is_a_validation_error(client: AsyncClient) -> None:
    headers = await session_headers(client, "ada@example.com")
    response = await client.post("/v1/api-keys", json={"name": "x", "scopes": ["admin:everything"]}, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


async def test_last_used_is_recorded_without_a_write_per_request(client: AsyncClient, session_factory) -> None:
    headers = await session_headers(client, "ada@example.com")
    key = (await create_key(client, headers, ["wallet:read"]))["key"]
    await client.get("/v1/me", headers={"X-API-Key": key})
    async with session_factory() as session:
        first = await session.scalar(select(ApiKey.last_used_at))
    await client.get("/v1/me", headers={"X-API-Key": key})
    async with session_factory() as session:
        second = await session.scalar(select(ApiKey.last_used_at))
    assert first is not None
    assert second == first


async def test_a_key_cannot_change_two_factor(client: AsyncClient) -> None:
    headers = await session_headers(client, "ada@example.com")
    key = (await create_key(client, headers, list(SCOPES)))["key"]
    response = await client.post("/v1/me/2fa/setup", headers={"X-API-Key": key})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
