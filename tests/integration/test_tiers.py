"""Tiers live in the database: operators change a tier's limit and features, audited, in effect at once."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from tests.integration.test_admin import headers_for, operator_headers


async def test_defaults_are_seeded_by_the_migration(client: AsyncClient, session_factory) -> None:
    ops = await operator_headers(client, session_factory)
    tiers = (await client.get("/v1/admin/tiers", headers=ops)).json()
    limits = {tier["name"]: tier["rate_limit_per_minute"] for tier in tiers["items"]}
    assert limits == {"free": 10, "payg": 30, "pro": 100, "enterprise": 500}
    flags = {tier["name"]: (tier["rentals"], tier["webhooks"], tier["area_code_choice"]) for tier in tiers["items"]}
    assert flags["free"] == (False, False, False)
    assert flags["enterprise"] == (True, True, True)


async def test_an_operator_edit_applies_to_the_next_request(client: AsyncClient, session_factory) -> None:
    ops = await operator_headers(client, session_factory)
    ada = await headers_for(client, "ada@example.com")
    assert (await client.get("/v1/me", headers=ada)).headers["ratelimit-limit"] == "10"
    response = await client.patch(
        "/v1/admin/tiers/free", json={"rate_limit_per_minute": 25, "rentals": True}, headers=ops
    )
    assert response.status_code == 200, response.text
    assert (response.json()["rate_limit_per_minute"], response.json()["rentals"]) == (25, True)
    assert (await client.get("/v1/me", headers=ada)).headers["ratelimit-limit"] == "25"
    audit = "SELECT CAST(before AS TEXT), CAST(after AS TEXT) FROM audit_logs WHERE action = 'admin.tier.updated'"
    async with session_factory() as session:
        row = (await session.execute(text(audit))).one()
    assert '"rate_limit_per_minute": 10' in row[0] or '"rate_limit_per_minute":10' in row[0]
    assert "25" in row[1]


@pytest.mark.parametrize(
    "body",
    [
        {"rate_limit_per_minute": 0},
        {"rate_limit_per_minute": "many"},
        {"colour": "red"},
        {"discount_bps": 9_001},
        {"discount_bps": -1},
    ],
)
async def test_invalid_tier_changes_are_422(client: AsyncClient, session_factory, body: dict) -> None:
    ops = await operator_headers(client, session_factory)
    response = await client.patch("/v1/admin/tiers/free", json=body, headers=ops)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


async def test_discounts_are_seeded_and_edited_by_operators(client: AsyncClient, session_factory) -> None:
    ops = await operator_headers(client, session_factory)
    tiers = (await client.get("/v1/admin/tiers", headers=ops)).json()["items"]
    assert {t["name"]: t["discount_bps"] for t in tiers} == {"free": 0, "payg": 0, "pro": 1_000, "enterprise": 2_000}
    changed = await client.patch("/v1/admin/tiers/payg", json={"discount_bps": 500}, headers=ops)
    assert (changed.status_code, changed.json()["discount_bps"]) == (200, 500)


async def test_unknown_tier_is_404_and_customers_403(client: AsyncClient, session_factory) -> None:
    ops = await operator_headers(client, session_factory)
    missing = await client.patch("/v1/admin/tiers/platinum", json={"rentals": True}, headers=ops)
    assert (missing.status_code, missing.json()["code"]) == (404, "tier_not_found")
    ada = await headers_for(client, "ada@example.com")
    refused = await client.patch("/v1/admin/tiers/free", json={"rate_limit_per_minute": 9999}, headers=ada)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")


async def test_a_user_cannot_be_put_on_a_tier_that_does_not_exist(client: AsyncClient, session_factory) -> None:
    await headers_for(client, "ada@example.com")
    async with session_factory() as session:
        with pytest.raises(Exception, match="fk_users_tier_tiers"):
            await session.execute(text("UPDATE users SET tier = 'platinum'"))
