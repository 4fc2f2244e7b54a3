"""Tax rates: seeded with Nigeria's 7.5% VAT, read and replaced by operators only, every change audited, and quotes
in the configured mode."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from namaskah.domain.audit.models import AuditLog
from namaskah.domain.tax.calc import TaxSplit
from namaskah.domain.tax.service import TaxService
from tests.integration.test_admin import headers_for, operator_headers
from tests.support.databases import make_settings

ROUTES = [("GET", "/v1/admin/tax-rates"), ("GET", "/v1/admin/tax-rates/NG"), ("PUT", "/v1/admin/tax-rates/NG")]
BODY = {"name": "VAT", "rate_bps": 1_000}


async def audit_entries(session_factory) -> list[AuditLog]:
    async with session_factory() as session:
        query = select(AuditLog).where(AuditLog.action == "admin.tax_rate.updated").order_by(AuditLog.occurred_at)
        return list((await session.scalars(query)).all())


async def test_nigerian_vat_is_seeded(client: AsyncClient, session_factory) -> None:
    ops = await operator_headers(client, session_factory)
    listed = (await client.get("/v1/admin/tax-rates", headers=ops)).json()
    assert [(r["country"], r["name"], r["rate_bps"]) for r in listed["items"]] == [("NG", "VAT", 750)]
    assert listed["total"] == 1
    one = (await client.get("/v1/admin/tax-rates/ng", headers=ops)).json()
    assert (one["country"], one["name"], one["rate_bps"]) == ("NG", "VAT", 750)


async def test_an_operator_edit_is_audited_and_applies_to_the_next_quote(client: AsyncClient, session_factory) -> None:
    ops = await operator_headers(client, session_factory)
    changed = await client.put("/v1/admin/tax-rates/NG", json=BODY, headers=ops)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["country"], changed.json()["rate_bps"]) == ("NG", 1_000)
    (entry,) = await audit_entries(session_factory)
    assert (entry.subject_type, entry.subject_id) == ("tax_rate", "NG")
    assert entry.before == {"name": "VAT", "rate_bps": 750}
    assert entry.after == {"name": "VAT", "rate_bps": 1_000}
    assert entry.actor_type == "user"
    assert entry.actor_user_id is not None
    async with session_factory() as session:
        quote = await TaxService(session, settings=make_settings()).quote(110_000)
    assert quote.split == TaxSplit(net=100_000, tax=10_000, gross=110_000)
    assert (quote.rate.rate_bps, quote.rate.label) == (1_000, "VAT 10%")


async def test_a_new_country_is_created_and_an_unchanged_put_records_nothing(
    client: AsyncClient, session_factory
) -> None:
    ops = await operator_headers(client, session_factory)
    assert (await client.get("/v1/admin/tax-rates/GH", headers=ops)).json()["code"] == "tax_rate_not_found"
    created = await client.put("/v1/admin/tax-rates/gh", json={"name": "VAT", "rate_bps": 1_500}, headers=ops)
    assert (created.status_code, created.json()["country"]) == (200, "GH")
    again = await client.put("/v1/admin/tax-rates/GH", json={"name": "VAT", "rate_bps": 1_500}, headers=ops)
    assert again.status_code == 200
    (entry,) = await audit_entries(session_factory)
    assert (entry.subject_id, entry.before, entry.after) == ("GH", None, {"name": "VAT", "rate_bps": 1_500})
    listed = (await client.get("/v1/admin/tax-rates", headers=ops)).json()
    assert [r["country"] for r in listed["items"]] == ["GH", "NG"]


async def test_customers_and_api_keys_get_403_and_change_nothing(client: AsyncClient, session_factory) -> None:
    customer = await headers_for(client, "ada@example.com")
    operator = await operator_headers(client, session_factory)
    created = await client.post("/v1/api-keys", json={"name": "ops", "scopes": ["wallet:read"]}, headers=operator)
    key = {"X-API-Key": created.json()["key"]}
    for headers in (customer, key):
        for method, path in ROUTES:
            response = await client.request(method, path, json=BODY if method == "PUT" else None, headers=headers)
            assert (response.status_code, response.json()["code"]) == (403, "forbidden"), (method, path)
    for method, path in ROUTES:
        response = await client.request(method, path, json=BODY if method == "PUT" else None)
        assert response.status_code == 401
    assert (await client.get("/v1/admin/tax-rates/NG", headers=operator)).json()["rate_bps"] == 750
    assert await audit_entries(session_factory) == []


@pytest.mark.parametrize(
    ("country", "body", "code"),
    [
        ("NG", {"name": "VAT", "rate_bps": 5_001}, "validation_failed"),  # past 50% is a typo, not a tax
        ("NG", {"name": "VAT", "rate_bps": -1}, "validation_failed"),
        ("NG", {"name": "VAT", "rate_bps": 7.5}, "validation_failed"),
        ("NG", {"name": "", "rate_bps": 750}, "validation_failed"),
        ("NG", {"name": " VAT", "rate_bps": 750}, "validation_failed"),
        ("NG", {"name": "V" * 41, "rate_bps": 750}, "validation_failed"),
        ("NG", {"rate_bps": 750}, "validation_failed"),
        ("NG", {"name": "VAT", "rate_bps": 750, "colour": "red"}, "validation_failed"),
        ("NGA", BODY, "invalid_country"),
        ("N1", BODY, "invalid_country"),
        ("ÑG", BODY, "invalid_country"),
    ],
)
async def test_bad_rates_are_422_and_change_nothing(
    client: AsyncClient, session_factory, country: str, body: dict, code: str
) -> None:
    ops = await operator_headers(client, session_factory)
    response = await client.put(f"/v1/admin/tax-rates/{country}", json=body, headers=ops)
    assert (response.status_code, response.json()["code"]) == (422, code)
    assert (await client.get("/v1/admin/tax-rates/NG", headers=ops)).json()["rate_bps"] == 750
    assert await audit_entries(session_factory) == []


async def test_the_table_refuses_an_out_of_range_rate(session_factory) -> None:
    async with session_factory() as session:
        with pytest.raises(IntegrityError, match="ck_tax_rates_rate_bps_range"):
            await session.execute(text("UPDATE tax_rates SET rate_bps = 7500 WHERE country = 'NG'"))


async def test_quotes_follow_tax_mode(session_factory) -> None:
    async with session_factory() as session:
        inclusive = await TaxService(session, settings=make_settings(TAX_MODE="inclusive")).quote(1_000_000)
        exclusive = await TaxService(session, settings=make_settings(TAX_MODE="exclusive")).quote(1_000_000)
    assert inclusive.split == TaxSplit(net=930_233, tax=69_767, gross=1_000_000)
    assert exclusive.split == TaxSplit(net=1_000_000, tax=75_000, gross=1_075_000)
    assert (inclusive.rate.country, inclusive.rate.label) == ("NG", "VAT 7.5%")
