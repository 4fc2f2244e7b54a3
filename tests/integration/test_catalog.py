"""The catalog on PostgreSQL: sync from a provider, prices per tier, quotes that match the list, the CLI."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.domain.catalog.models import CatalogEntry
from namaskah.domain.catalog.pricing import ExchangeRates
from namaskah.domain.catalog.service import CatalogService, UnknownService
from namaskah.providers.simulator import SERVICES, SimulatorProvider
from tests.support.databases import run_cli, settings_env

PASSWORD = "violet-harbour-lantern-7"
RATES = ExchangeRates(rates={"USD": Decimal(1600)})


class ShrunkSimulator(SimulatorProvider):
    """The simulator after it stopped offering Discord and WhatsApp got dearer."""

    async def verification_price(self, service: str, *, area_code: bool = False, carrier: bool = False):  # type: ignore[no-untyped-def]
        price = await super().verification_price(service)
        return price if service != "WhatsApp" else type(price)(amount=Decimal("1.00"), currency="USD")

    async def list_services(self, kind):  # type: ignore[no-untyped-def]
        return [s for s in await super().list_services(kind) if s.name != "Discord"]


async def synced(session_factory: async_sessionmaker[AsyncSession], provider: SimulatorProvider | None = None):  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        report = await CatalogService(session=session, rates=RATES).sync(provider or SimulatorProvider(session_factory))
        await session.commit()
    return report


async def test_sync_adds_then_refreshes_and_retires_without_touching_our_markup(session_factory) -> None:
    first = await synced(session_factory)
    assert (first.added, first.updated, first.deactivated) == (len(SERVICES), 0, 0)
    async with session_factory() as session:
        await session.execute(text("UPDATE services SET markup_bps = 20000 WHERE slug = 'whatsapp'"))
        await session.commit()
    second = await synced(session_factory, ShrunkSimulator(session_factory))
    assert (second.added, second.updated, second.deactivated) == (0, len(SERVICES) - 1, 1)
    async with session_factory() as session:
        rows = {e.slug: e for e in (await session.scalars(select(CatalogEntry))).all()}
    assert len(rows) == len(SERVICES)
    assert rows["whatsapp"].cost == Decimal("1.00")
    assert rows["whatsapp"].markup_bps == 20_000
    assert rows["discord"].active is False
    assert rows["facebook"].rental_cost_per_day is None
    assert rows["telegram"].rental_cost_per_day == Decimal("0.45")


async def test_prices_depend_on_the_callers_tier_and_match_the_quote(
    client: httpx.AsyncClient, session_factory
) -> None:
    await synced(session_factory)
    anonymous = {s["slug"]: s for s in (await client.get("/v1/services")).json()["items"]}
    # $0.75 x 1600 x 1.5 markup = NGN 1800.00
    assert anonymous["whatsapp"] == {
        "slug": "whatsapp",
        "name": "WhatsApp",
        "price": 180_000,
        "currency": "NGN",
        "rental_price_per_day": 120_000,
    }
    await client.post("/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    async with session_factory() as session:
        await session.execute(text("UPDATE users SET tier = 'pro' WHERE email = 'ada@example.com'"))
        await session.commit()
    tokens = (await client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})).json()
    pro = await client.get("/v1/services", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    listed = {s["slug"]: s["price"] for s in pro.json()["items"]}
    assert listed["whatsapp"] == 162_000  # 10% off for pro
    async with session_factory() as session:
        catalog = CatalogService(session=session, rates=RATES)
        assert all([(await catalog.quote(slug, "pro")).price == price for slug, price in listed.items()])
        # $0.45 a day x 1600 x 1.5 = NGN 1080.00, 10% off = 972.00, for 7 days
        assert (await catalog.quote_rental("telegram", "pro", 7)).price == 7 * 97_200


async def test_retired_and_unknown_services_are_not_for_sale(client: httpx.AsyncClient, session_factory) -> None:
    await synced(session_factory, ShrunkSimulator(session_factory))
    await synced(session_factory, ShrunkSimulator(session_factory))
    async with session_factory() as session:
        await session.execute(text("UPDATE services SET active = false WHERE slug = 'telegram'"))
        await session.commit()
    slugs = {s["slug"] for s in (await client.get("/v1/services")).json()["items"]}
    assert "telegram" not in slugs
    assert "whatsapp" in slugs
    async with session_factory() as session:
        catalog = CatalogService(session=session, rates=RATES)
        for slug in ("telegram", "no-such-thing"):
            with pytest.raises(UnknownService):
                await catalog.quote(slug, "free")
        with pytest.raises(UnknownService, match="can not be rented"):
            await catalog.quote_rental("facebook", "free", 1)


async def test_a_bad_credential_is_refused_rather_than_priced_as_anonymous(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/services", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


def test_catalog_sync_command(isolated_database: str) -> None:
    env = settings_env(DATABASE_URL=isolated_database)
    first = run_cli("catalog", "sync", env=env)
    assert first.returncode == 0, first.stderr
    assert f"catalog: {len(SERVICES)} added, 0 updated, 0 retired" in first.stdout
    again = run_cli("catalog", "sync", env=env)
    assert f"catalog: 0 added, {len(SERVICES)} updated, 0 retired" in again.stdout
    refused = run_cli("catalog", "sync", env={**env, "FX_RATES": "EUR=1700"})
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "No exchange rate for USD" in refused.stderr
