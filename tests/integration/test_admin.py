"""Operator routes: only operators signed in with a session reach them; user changes are audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import update

from namaskah.domain.accounts.models import User
from tests.integration.test_accounts import PASSWORD, bearer, register

ROUTES = [
    ("GET", "/v1/admin/users"),
    ("PATCH", f"/v1/admin/users/{uuid.uuid4()}"),
    ("GET", "/v1/admin/audit-logs"),
]


async def headers_for(client: AsyncClient, email: str) -> dict[str, str]:
    assert (await register(client, email=email)).status_code == 201
    response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def operator_headers(client: AsyncClient, session_factory, email: str = "ops@example.com") -> dict[str, str]:
    headers = await headers_for(client, email)
    async with session_factory() as session:
        # Enterprise: the operator's tier sets its request limit, and these tests make many requests.
        await session.execute(update(User).where(User.email == email).values(role="operator", tier="enterprise"))
        await session.commit()
    return headers


async def call(client: AsyncClient, method: str, path: str, headers: dict[str, str]):
    return await client.request(method, path, headers=headers, json={} if method == "PATCH" else None)


async def test_anonymous_callers_get_401(client: AsyncClient) -> None:
    for method, path in ROUTES:
        response = await call(client, method, path, {})
        assert response.status_code == 401, path
        assert response.json()["code"] == "not_authenticated"


async def test_customers_and_api_keys_get_403(client: AsyncClient, session_factory) -> None:
    customer = await headers_for(client, "ada@example.com")
    for method, path in ROUTES:
        response = await call(client, method, path, customer)
        assert response.status_code == 403, path
        assert response.json()["code"] == "forbidden"

    operator = await operator_headers(client, session_factory)
    created = await client.post("/v1/api-keys", json={"name": "ops", "scopes": ["wallet:read"]}, headers=operator)
    key = {"X-API-Key": created.json()["key"]}
    for method, path in ROUTES:
        response = await call(client, method, path, key)
        assert response.status_code == 403, path
        assert response.json()["code"] == "forbidden"


async def test_operator_lists_and_filters_users(client: AsyncClient, session_factory) -> None:
    for email in ("ada@example.com", "grace@example.com", "adam@sample.org"):
        assert (await register(client, email=email)).status_code == 201
    headers = await operator_headers(client, session_factory)
    listed = (await client.get("/v1/admin/users", headers=headers)).json()
    assert listed["total"] == 4
    assert listed["items"][0]["email"] == "ops@example.com"  # newest first
    assert set(listed["items"][0]) == {
        "id",
        "email",
        "tier",
        "role",
        "is_active",
        "email_verified",
        "totp_enabled",
        "created_at",
    }
    by_email = (await client.get("/v1/admin/users", params={"email": "ADA"}, headers=headers)).json()
    assert sorted(item["email"] for item in by_email["items"]) == ["ada@example.com", "adam@sample.org"]
    # LIKE wildcards are matched literally.
    assert (await client.get("/v1/admin/users", params={"email": "%"}, headers=headers)).json()["total"] == 0
    by_tier = (await client.get("/v1/admin/users", params={"tier": "free"}, headers=headers)).json()
    assert by_tier["total"] == 3
    paged = (await client.get("/v1/admin/users", params={"limit": 1, "offset": 1}, headers=headers)).json()
    assert (len(paged["items"]), paged["total"]) == (1, 4)
    bad = await client.get("/v1/admin/users", params={"tier": "platinum"}, headers=headers)
    assert bad.status_code in {400, 422}


async def test_operator_changes_a_user_and_it_is_audited(client: AsyncClient, session_factory) -> None:
    customer = await headers_for(client, "ada@example.com")
    user_id = (await client.get("/v1/me", headers=customer)).json()["id"]
    headers = await operator_headers(client, session_factory)
    operator_id = (await client.get("/v1/me", headers=headers)).json()["id"]

    response = await client.patch(
        f"/v1/admin/users/{user_id}", json={"tier": "pro", "is_active": False, "role": "customer"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert (response.json()["tier"], response.json()["is_active"], response.json()["role"]) == (
        "pro",
        False,
        "customer",
    )
    assert (await client.get("/v1/me", headers=customer)).status_code == 401  # disabled at once

    logs = (await client.get("/v1/admin/audit-logs", params={"subject_id": user_id}, headers=headers)).json()
    assert [entry["action"] for entry in logs["items"]] == ["admin.user.updated", "auth.login.succeeded"]
    entry = logs["items"][0]
    assert (entry["actor_type"], entry["actor_user_id"]) == ("user", operator_id)
    assert entry["before"] == {"tier": "free", "is_active": True}  # the role did not change
    assert entry["after"] == {"tier": "pro", "is_active": False}
    assert entry["request_id"] == response.headers["x-request-id"]

    unchanged = await client.patch(f"/v1/admin/users/{user_id}", json={"tier": "pro"}, headers=headers)
    assert unchanged.status_code == 200
    filtered = await client.get("/v1/admin/audit-logs", params={"action": "admin.user.updated"}, headers=headers)
    assert filtered.json()["total"] == 1  # nothing changed, nothing recorded


@pytest.mark.parametrize(
    "body", [{"tier": "platinum"}, {"role": "root"}, {"is_active": "yes"}, {"teir": "pro"}], ids=str
)
async def test_invalid_changes_are_refused(client: AsyncClient, session_factory, body: dict) -> None:
    headers = await operator_headers(client, session_factory)
    operator_id = (await client.get("/v1/me", headers=headers)).json()["id"]
    response = await client.patch(f"/v1/admin/users/{operator_id}", json=body, headers=headers)
    assert response.status_code in {400, 422}, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_user_is_404(client: AsyncClient, session_factory) -> None:
    headers = await operator_headers(client, session_factory)
    response = await client.patch(f"/v1/admin/users/{uuid.uuid4()}", json={"tier": "pro"}, headers=headers)
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


async def test_audit_logs_filter_and_page_newest_first(client: AsyncClient, session_factory) -> None:
    customer = await headers_for(client, "ada@example.com")
    ada_id = (await client.get("/v1/me", headers=customer)).json()["id"]
    await client.post("/v1/auth/login", json={"email": "ada@example.com", "password": "not-the-password-at-all"})
    headers = await operator_headers(client, session_factory)
    operator_id = (await client.get("/v1/me", headers=headers)).json()["id"]

    everything = (await client.get("/v1/admin/audit-logs", headers=headers)).json()
    assert [e["action"] for e in everything["items"]] == [
        "auth.login.succeeded",
        "auth.login.failed",
        "auth.login.succeeded",
    ]
    sequences = [e["sequence"] for e in everything["items"]]
    assert sequences == sorted(sequences, reverse=True)
    by_actor = await client.get("/v1/admin/audit-logs", params={"actor_user_id": ada_id}, headers=headers)
    assert [e["subject_id"] for e in by_actor.json()["items"]] == [ada_id]
    failed = await client.get("/v1/admin/audit-logs", params={"action": "auth.login.failed"}, headers=headers)
    assert failed.json()["items"][0]["after"] == {"email": "ada@example.com", "reason": "wrong_password"}
    mine = await client.get("/v1/admin/audit-logs", params={"subject_id": operator_id}, headers=headers)
    assert mine.json()["total"] == 1

    now = datetime.now(UTC)
    future = {"since": (now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")}
    assert (await client.get("/v1/admin/audit-logs", params=future, headers=headers)).json()["total"] == 0
    past = {"until": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")}  # no offset: taken as UTC
    assert (await client.get("/v1/admin/audit-logs", params=past, headers=headers)).json()["total"] == 0
    window = {"since": (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"), "limit": 2, "offset": 1}
    paged = (await client.get("/v1/admin/audit-logs", params=window, headers=headers)).json()
    assert (paged["total"], [e["sequence"] for e in paged["items"]]) == (3, sequences[1:])
