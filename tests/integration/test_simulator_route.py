"""`POST /v1/dev/simulator/messages`: the simulator delivers an SMS in dev mode; production has no such route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.providers.base import ProviderState, ReservationKind
from namaskah.providers.simulator import SimulatorProvider, parse_code
from tests.conftest import serve_in_loop
from tests.integration.test_errors import assert_problem
from tests.support.databases import REDIS_URL, make_settings

ROUTE = "/v1/dev/simulator/messages"


@pytest.fixture
def simulator(session_factory: async_sessionmaker[AsyncSession]) -> SimulatorProvider:
    """The provider as a worker would hold it: its own instance, sharing only the database with the route."""
    return SimulatorProvider(session_factory)


async def expire(session_factory: async_sessionmaker[AsyncSession], phone_number: str) -> None:
    async with session_factory() as session:
        await session.execute(
            text("UPDATE simulator_reservations SET expires_at = :at WHERE phone_number = :number"),
            {"at": datetime.now(UTC) - timedelta(seconds=1), "number": phone_number},
        )
        await session.commit()


async def test_a_delivered_sms_reaches_the_verification(
    client: httpx.AsyncClient, simulator: SimulatorProvider
) -> None:
    number = await simulator.acquire("WhatsApp", idempotency_key="verification:1")
    response = await client.post(ROUTE, json={"phone_number": number.phone_number, "text": "Your code: 482913"})
    assert response.status_code == 201, response.text
    assert response.json() == {"reservation_id": number.provider_id, "code": "482913"}
    [message] = await simulator.messages(number.provider_id, ReservationKind.VERIFICATION)
    assert (message.text, message.code) == ("Your code: 482913", "482913")
    assert (await simulator.get_verification(number.provider_id)).state is ProviderState.COMPLETED
    # Completed: the verification takes no second SMS.
    again = await client.post(ROUTE, json={"phone_number": number.phone_number, "text": "Your code: 111111"})
    assert_problem(again, 404, "unknown_number")


async def test_a_rental_takes_many_messages_with_or_without_a_code(
    client: httpx.AsyncClient, simulator: SimulatorProvider
) -> None:
    rental = await simulator.rent("Telegram", 7, idempotency_key="rental:1")
    answers = [
        (await client.post(ROUTE, json={"phone_number": rental.phone_number, "text": body})).json()
        for body in ("Login code 24680", "Welcome to Telegram!")
    ]
    assert answers == [
        {"reservation_id": rental.provider_id, "code": "24680"},
        {"reservation_id": rental.provider_id, "code": None},
    ]
    assert len(await simulator.messages(rental.provider_id, ReservationKind.RENTAL)) == 2


async def test_unknown_cancelled_and_expired_numbers_are_404(
    client: httpx.AsyncClient, simulator: SimulatorProvider, session_factory
) -> None:
    body = assert_problem(
        await client.post(ROUTE, json={"phone_number": "+14155550199", "text": "1234"}), 404, "unknown_number"
    )
    assert "+14155550199" in body["detail"]
    cancelled = await simulator.acquire("Uber", idempotency_key="cancelled")
    await simulator.cancel(cancelled.provider_id)
    expired = await simulator.acquire("Uber", idempotency_key="expired")
    await expire(session_factory, expired.phone_number)
    ended = await simulator.rent("Uber", 1, idempotency_key="ended")
    await expire(session_factory, ended.phone_number)
    released = await simulator.rent("Uber", 1, idempotency_key="released")
    await simulator.release(released.provider_id)
    for number in (cancelled, expired, ended, released):
        response = await client.post(ROUTE, json={"phone_number": number.phone_number, "text": "code 1234"})
        assert_problem(response, 404, "unknown_number")
    assert await simulator.messages(expired.provider_id, ReservationKind.VERIFICATION) == []
    assert await simulator.messages(ended.provider_id, ReservationKind.RENTAL) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone_number": "4155550123", "text": "1234"}, "phone_number"),
        ({"phone_number": "+04155550123", "text": "1234"}, "phone_number"),
        ({"phone_number": "+1 415 555 0123", "text": "1234"}, "phone_number"),
        ({"phone_number": "+14155550123\n", "text": "1234"}, "phone_number"),
        ({"phone_number": "+1234567890123456", "text": "1234"}, "phone_number"),
        ({"phone_number": "+14155550123", "text": ""}, "text"),
        ({"phone_number": "+14155550123", "text": "x" * 1601}, "text"),
        ({"phone_number": "+14155550123"}, "text"),
        ({"phone_number": "+14155550123", "text": "1234", "sender": "x"}, "sender"),
    ],
)
async def test_bad_bodies_are_422(client: httpx.AsyncClient, body: dict[str, str], field: str) -> None:
    problem = assert_problem(await client.post(ROUTE, json=body), 422, "validation_failed")
    assert any(field in error["field"] or f"`{field}`" in error["message"] for error in problem["errors"]), problem


async def test_the_longest_text_is_accepted(client: httpx.AsyncClient, simulator: SimulatorProvider) -> None:
    number = await simulator.acquire("Google", idempotency_key="long")
    longest = "Code 5555 " + "x" * 1590
    response = await client.post(ROUTE, json={"phone_number": number.phone_number, "text": longest})
    assert response.status_code == 201, response.text
    [message] = await simulator.messages(number.provider_id, ReservationKind.VERIFICATION)
    assert message.text == longest


@pytest.mark.parametrize(
    ("sms", "code"),
    [
        ("Your code is 123456", "123456"),
        ("G-482913 is your Google verification code", "482913"),
        ("1234", "1234"),
        ("Code:12345678.", "12345678"),
        ("Telegram code 55555, or use 66666", "55555"),  # the first run wins
        ("Call +14155550123 and enter 9876", "9876"),  # a phone number is too long to be a code
        ("123456789", None),  # nine digits: not a code
        ("Only 123 here", None),  # three digits: not a code
        ("123 456", None),  # split runs are not joined
        ("رمزك ٤٥٦٧٨٩", None),  # other scripts' digits are not codes
        ("No digits at all", None),
    ],
)
def test_codes_are_the_first_run_of_four_to_eight_digits(sms: str, code: str | None) -> None:
    assert parse_code(sms) == code


async def test_the_route_answers_the_parsed_code(client: httpx.AsyncClient, simulator: SimulatorProvider) -> None:
    number = await simulator.acquire("Instagram", idempotency_key="parse")
    response = await client.post(
        ROUTE, json={"phone_number": number.phone_number, "text": "Call 4155550123 or 987654321"}
    )
    assert response.json() == {"reservation_id": number.provider_id, "code": None}


@pytest.fixture
async def production_client(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(APP_ENV="production", SECRET_KEY="p" * 40, REDIS_URL=REDIS_URL)
    app = create_app(settings, session_factory=session_factory, broker=StubBroker())
    async with serve_in_loop(app) as client:
        yield client


async def test_the_route_does_not_exist_in_production(
    production_client: httpx.AsyncClient, client: httpx.AsyncClient, simulator: SimulatorProvider
) -> None:
    number = await simulator.acquire("WhatsApp", idempotency_key="prod")
    body = {"phone_number": number.phone_number, "text": "code 1234"}
    assert_problem(await production_client.post(ROUTE, json=body), 404, "not_found")
    assert ROUTE not in (await production_client.get("/schema/openapi.json")).json()["paths"]
    assert await simulator.messages(number.provider_id, ReservationKind.VERIFICATION) == []
    assert ROUTE in (await client.get("/schema/openapi.json")).json()["paths"]
