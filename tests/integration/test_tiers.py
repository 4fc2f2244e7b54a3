"""Tiers live in the database: operators change a tier's limit, features and plan price, audited, in effect at once
(a renewal after a price change charges the new price)."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text

from namaskah.domain.audit.models import AuditLog
from tests.integration.test_admin import headers_for, operator_headers
from tests.integration.test_subscriptions import PRO_CREDIT, PRO_PRICE, balance, references
from tests.integration.test_subscriptions_renewal import END, load, subscribed, sweep


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


# --- plan prices ------------------------------------------------------------------------------------------


async def test_an_operator_changes_a_plan_price_and_credit_audited_and_the_plans_show_it(
    client: AsyncClient, session_factory
) -> None:
    ops = await operator_headers(client, session_factory)
    response = await client.patch(
        "/v1/admin/tiers/pro", json={"price_per_month": 600_000, "included_monthly_credit": 150_000}, headers=ops
    )

    assert response.status_code == 200, response.text
    assert (response.json()["price_per_month"], response.json()["included_monthly_credit"]) == (600_000, 150_000)
    plans = {plan["name"]: plan for plan in (await client.get("/v1/billing/plans")).json()["items"]}
    assert (plans["pro"]["price_per_month"], plans["pro"]["included_monthly_credit"]) == (600_000, 150_000)
    async with session_factory() as session:
        audit = (await session.scalars(select(AuditLog).where(AuditLog.action == "admin.tier.updated"))).one()
    assert (audit.subject_id, audit.before["price_per_month"], audit.after["price_per_month"]) == (
        "pro",
        PRO_PRICE,
        600_000,
    )
    assert (audit.before["included_monthly_credit"], audit.after["included_monthly_credit"]) == (PRO_CREDIT, 150_000)
    # The same values again change nothing and record nothing.
    assert (
        await client.patch("/v1/admin/tiers/pro", json={"price_per_month": 600_000}, headers=ops)
    ).status_code == 200
    async with session_factory() as session:
        audits = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "admin.tier.updated")
        )
    assert audits == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"price_per_month": -1}, "invalid_plan_price"),
        ({"included_monthly_credit": -500}, "invalid_plan_price"),
        ({"price_per_month": 1_000_000_001}, "invalid_plan_price"),
        ({"price_per_month": 5000.5}, "validation_failed"),
        ({"price_per_month": "5,000"}, "validation_failed"),  # digits alone are read as a number, as everywhere
        ({"included_monthly_credit": True}, "validation_failed"),
        ({"price_per_month": None, "included_monthly_credit": "lots"}, "validation_failed"),
    ],
)
async def test_a_plan_price_is_a_non_negative_whole_number_of_kobo(
    client: AsyncClient, session_factory, body: dict, code: str
) -> None:
    ops = await operator_headers(client, session_factory)

    response = await client.patch("/v1/admin/tiers/pro", json=body, headers=ops)

    assert (response.status_code, response.json()["code"]) == (422, code)
    pro = next(t for t in (await client.get("/v1/admin/tiers", headers=ops)).json()["items"] if t["name"] == "pro")
    assert (pro["price_per_month"], pro["included_monthly_credit"]) == (PRO_PRICE, PRO_CREDIT)  # nothing changed


async def test_a_renewal_after_a_price_change_charges_the_new_price(client: AsyncClient, session_factory) -> None:
    ops = await operator_headers(client, session_factory)
    user_id, sub_id = await subscribed(session_factory, funds=PRO_PRICE + 700_000)
    assert await balance(session_factory, user_id) == 700_000 + PRO_CREDIT

    changed = await client.patch(
        "/v1/admin/tiers/pro", json={"price_per_month": 700_000, "included_monthly_credit": 0}, headers=ops
    )
    assert changed.status_code == 200, changed.text
    assert await sweep(session_factory, END) == 1

    charged = await references(session_factory, f"subscription:{sub_id}:")
    assert [(ref.rsplit(":", 1)[-1], kind, amount) for ref, kind, amount in charged if kind == "subscription"] == [
        ("1", "subscription", PRO_PRICE),
        ("2", "subscription", 700_000),
    ]
    assert await balance(session_factory, user_id) == PRO_CREDIT  # the new month, and no credit with it
    assert (await load(session_factory, sub_id)).price == 700_000
