"""`GET /v1/verifications/{id}/events`: status changes and messages as Server-Sent Events, only the owner's."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.app import create_app
from namaskah.db.base import utcnow
from namaskah.db.engine import create_session_factory
from namaskah.domain.verifications import worker
from namaskah.domain.verifications.jobs import AcquireNumber, PollMessages
from namaskah.domain.verifications.models import Verification
from namaskah.providers.simulator import SimulatorProvider
from tests.conftest import serve_in_loop
from tests.integration.test_catalog import synced
from tests.integration.test_verifications import Sessions, customer, fund, load, price_of, transactions
from tests.support.databases import make_settings


def parse(stream: str) -> list[tuple[str, dict]]:
    """(event, data) of each event in a text/event-stream body; comments skipped."""
    events = []
    for block in stream.strip().split("\r\n\r\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def funded_purchase(client: AsyncClient, sessions: Sessions, *, sync: bool = True) -> tuple[dict, str]:
    """A customer who bought one verification with just enough credits: their headers and its id."""
    if sync:
        await synced(sessions)
    headers, user_id = await customer(client, sessions)
    await fund(sessions, user_id, await price_of(sessions))
    return headers, await buy(client, headers)


async def buy(client: AsyncClient, headers: dict) -> str:
    response = await client.post("/v1/verifications", json={"service": "whatsapp"}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def complete(sessions: Sessions, verification_id: str, text: str) -> None:
    """What the worker and the carrier do: assign a number, deliver an SMS to it, poll it in."""
    simulator, tx, vid = SimulatorProvider(sessions), transactions(sessions), uuid.UUID(verification_id)
    await worker.acquire(tx, simulator, AcquireNumber(verification_id=vid))
    await simulator.deliver((await load(sessions, vid)).phone_number or "", text)
    await worker.poll(tx, simulator, PollMessages(verification_id=vid))


@pytest.fixture
async def live(isolated_database: str) -> AsyncIterator[tuple[AsyncClient, Sessions]]:
    """The API on a database of its own, so the stream and the worker each get real connections."""
    engine = create_async_engine(isolated_database, pool_size=10, max_overflow=0)
    sessions = create_session_factory(engine)
    await synced(sessions)
    settings = make_settings(DATABASE_URL=isolated_database, VERIFICATION_EVENTS_INTERVAL="0.05")
    app = create_app(settings, engine=engine, session_factory=sessions, broker=StubBroker())
    async with serve_in_loop(app) as client:
        yield client, sessions
    await engine.dispose()


async def test_a_finished_verification_streams_its_message_and_status_then_ends(
    client: AsyncClient, session_factory: Sessions
) -> None:
    headers, verification_id = await funded_purchase(client, session_factory)
    await complete(session_factory, verification_id, "Your WhatsApp code is 482913")
    response = await client.get(f"/v1/verifications/{verification_id}/events", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse(response.text)
    assert [kind for kind, _ in events] == ["message", "status"]
    assert events[0][1]["code"] == "482913"
    assert (events[1][1]["status"], events[1][1]["code"]) == ("completed", "482913")


async def test_changes_made_elsewhere_reach_an_open_stream(live: tuple[AsyncClient, Sessions]) -> None:
    client, sessions = live
    headers, verification_id = await funded_purchase(client, sessions, sync=False)
    stream = asyncio.create_task(client.get(f"/v1/verifications/{verification_id}/events", headers=headers))
    await asyncio.sleep(0.3)  # the stream has sent `pending` and is watching
    assert not stream.done()
    await complete(sessions, verification_id, "G-771204 is your Google code")
    response = await asyncio.wait_for(stream, timeout=10)
    kinds = [(kind, data.get("status")) for kind, data in parse(response.text)]
    assert kinds[0] == ("status", "pending")
    assert kinds[-2:] == [("message", None), ("status", "completed")]
    assert parse(response.text)[-1][1]["code"] == "771204"


async def test_another_users_stream_is_404_and_a_key_needs_the_read_scope(
    client: AsyncClient, session_factory: Sessions
) -> None:
    headers, verification_id = await funded_purchase(client, session_factory)
    intruder, _ = await customer(client, session_factory, "eve@example.com")
    refused = await client.get(f"/v1/verifications/{verification_id}/events", headers=intruder)
    assert (refused.status_code, refused.json()["code"]) == (404, "verification_not_found")
    created = await client.post("/v1/api-keys", json={"name": "shop", "scopes": ["wallet:read"]}, headers=headers)
    key = {"X-API-Key": created.json()["key"]}
    scoped = await client.get(f"/v1/verifications/{verification_id}/events", headers=key)
    assert (scoped.status_code, scoped.json()["code"]) == (403, "insufficient_scope")


async def test_every_api_process_expires_and_refunds_overdue_verifications(isolated_database: str) -> None:
    engine = create_async_engine(isolated_database, pool_size=5, max_overflow=0)
    sessions = create_session_factory(engine)
    await synced(sessions)
    settings = make_settings(DATABASE_URL=isolated_database, VERIFICATION_EXPIRY_SWEEP_INTERVAL="0.1")
    app = create_app(settings, engine=engine, session_factory=sessions, broker=StubBroker())
    try:
        async with serve_in_loop(app) as client:
            headers, user_id = await customer(client, sessions)
            price = await price_of(sessions)
            await fund(sessions, user_id, price)
            verification_id = uuid.UUID(await buy(client, headers))
            async with sessions() as session:  # its poll job was lost and its window is over
                await session.execute(
                    update(Verification).where(Verification.id == verification_id).values(expires_at=utcnow())
                )
                await session.commit()
            await asyncio.sleep(0.5)
            assert (await load(sessions, verification_id)).status == "expired"
            assert (await client.get("/v1/wallet", headers=headers)).json()["balance"] == price
    finally:
        await engine.dispose()
