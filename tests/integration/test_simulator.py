"""The simulator as a complete SmsProvider: verifications, rentals, refusals, expiry and its scenario hooks."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.providers import simulator as simulator_module
from namaskah.providers.base import ProviderPrice, ProviderState, ReservationKind
from namaskah.providers.errors import (
    ProviderNotFound,
    ProviderOutOfStock,
    ProviderPriceExceeded,
    ProviderRejected,
    ProviderUnavailable,
    ProviderUnsupportedOption,
)
from namaskah.providers.simulator import SimulatorProvider, UnknownNumber
from namaskah.providers.simulator_models import SimulatorReservation

US_NUMBER = re.compile(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, so expiry is tested without waiting."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def simulator(session_factory: async_sessionmaker[AsyncSession], clock: Clock) -> SimulatorProvider:
    return SimulatorProvider(session_factory, clock=clock)


async def reservations(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(SimulatorReservation)) or 0)


async def test_acquire_assigns_a_fresh_us_number_for_fifteen_minutes(simulator: SimulatorProvider) -> None:
    first = await simulator.acquire("WhatsApp", idempotency_key="verification:1")
    second = await simulator.acquire("WhatsApp", idempotency_key="verification:2")
    assert first.phone_number != second.phone_number
    assert first.provider_id != second.provider_id
    assert US_NUMBER.fullmatch(first.phone_number)
    assert (first.kind, first.service, first.state) == (ReservationKind.VERIFICATION, "WhatsApp", ProviderState.PENDING)
    assert (first.created_at, first.expires_at) == (START, START + timedelta(minutes=15))
    assert first.cost == ProviderPrice(amount=Decimal("0.75"), currency="USD")
    assert await simulator.get_verification(first.provider_id) == first
    assert await simulator.messages(first.provider_id, ReservationKind.VERIFICATION) == []
    in_area = await simulator.acquire("Telegram", idempotency_key="verification:3", area_code="415", carrier="any")
    assert in_area.phone_number.startswith("+1415")


async def test_acquire_is_idempotent_on_its_key(simulator: SimulatorProvider, session_factory) -> None:
    first = await simulator.acquire("Telegram", idempotency_key="verification:7")
    again = await simulator.acquire("Telegram", idempotency_key=" verification:7 ")  # trimmed, as vendors do
    assert again == first
    assert await reservations(session_factory) == 1
    with pytest.raises(ProviderRejected, match="different request"):
        await simulator.acquire("Google", idempotency_key="verification:7")
    with pytest.raises(ProviderRejected, match="different request"):
        await simulator.rent("Telegram", 7, idempotency_key="verification:7")
    for blank in ("", "   ", "k" * 257):
        with pytest.raises(ValueError, match="idempotency key"):
            await simulator.acquire("Telegram", idempotency_key=blank)
    assert await reservations(session_factory) == 1


async def test_refusals_sell_nothing(simulator: SimulatorProvider, session_factory) -> None:
    with pytest.raises(ProviderNotFound, match="no service"):
        await simulator.acquire("Myspace", idempotency_key="a")
    with pytest.raises(ProviderPriceExceeded):
        await simulator.acquire("WhatsApp", idempotency_key="b", max_price=Decimal("0.74"))
    with pytest.raises(ProviderOutOfStock):
        await simulator.acquire("WhatsApp", idempotency_key="c", area_code="000")
    with pytest.raises(ProviderUnavailable) as unavailable:
        await simulator.acquire("WhatsApp", idempotency_key="d", area_code="999")
    assert unavailable.value.headers == {"Retry-After": "1"}
    with pytest.raises(ProviderUnsupportedOption, match="three digits"):
        await simulator.acquire("WhatsApp", idempotency_key="e", area_code="41")
    with pytest.raises(ProviderOutOfStock):
        await simulator.rent("Telegram", 1, idempotency_key="f", area_code="000")
    assert await reservations(session_factory) == 0
    assert (await simulator.acquire("WhatsApp", idempotency_key="b", max_price=Decimal("0.75"))).state == "pending"


async def test_a_number_is_never_handed_out_twice(simulator: SimulatorProvider, monkeypatch) -> None:
    draws = iter(["+14155550100", "+14155550100", "+14155550101"])
    monkeypatch.setattr(simulator_module, "_draw_number", lambda _: next(draws))
    first = await simulator.acquire("WhatsApp", idempotency_key="one")
    second = await simulator.acquire("WhatsApp", idempotency_key="two")
    assert (first.phone_number, second.phone_number) == ("+14155550100", "+14155550101")
    monkeypatch.setattr(simulator_module, "_draw_number", lambda _: "+14155550100")
    with pytest.raises(ProviderOutOfStock, match="No free number"):
        await simulator.acquire("WhatsApp", idempotency_key="three")


async def test_the_first_message_completes_a_verification(simulator: SimulatorProvider, clock: Clock) -> None:
    number = await simulator.acquire("Google", idempotency_key="v")
    clock.now += timedelta(minutes=3)
    delivery = await simulator.deliver(number.phone_number, "G-482913 is your Google code", sender="22000")
    assert (delivery.reservation_id, delivery.kind) == (number.provider_id, ReservationKind.VERIFICATION)
    assert (delivery.message.code, delivery.message.received_at) == ("482913", clock.now)
    assert (await simulator.get_verification(number.provider_id)).state is ProviderState.COMPLETED
    assert await simulator.messages(number.provider_id, ReservationKind.VERIFICATION) == [delivery.message]
    assert delivery.message.sender == "22000"
    with pytest.raises(UnknownNumber):
        await simulator.deliver(number.phone_number, "Another code 111111")
    assert len(await simulator.messages(number.provider_id, ReservationKind.VERIFICATION)) == 1


async def test_cancel_only_while_no_message_arrived(simulator: SimulatorProvider) -> None:
    quiet = await simulator.acquire("Uber", idempotency_key="quiet")
    await simulator.cancel(quiet.provider_id)
    await simulator.cancel(quiet.provider_id)  # a job running twice changes nothing
    assert (await simulator.get_verification(quiet.provider_id)).state is ProviderState.CANCELLED
    with pytest.raises(UnknownNumber):
        await simulator.deliver(quiet.phone_number, "Your code 1234")
    answered = await simulator.acquire("Uber", idempotency_key="answered")
    await simulator.deliver(answered.phone_number, "Your code 1234")
    with pytest.raises(ProviderRejected, match="is completed"):
        await simulator.cancel(answered.provider_id)
    assert (await simulator.get_verification(answered.provider_id)).state is ProviderState.COMPLETED


async def test_report_a_number_that_did_not_work(simulator: SimulatorProvider, clock: Clock) -> None:
    answered = await simulator.acquire("Discord", idempotency_key="answered")
    await simulator.deliver(answered.phone_number, "wrong service text")
    await simulator.report(answered.provider_id)
    await simulator.report(answered.provider_id)
    assert (await simulator.get_verification(answered.provider_id)).state is ProviderState.REPORTED
    silent = await simulator.acquire("Discord", idempotency_key="silent")
    clock.now += timedelta(minutes=20)
    await simulator.report(silent.provider_id)  # after the window too: it never got its code
    cancelled = await simulator.acquire("Discord", idempotency_key="cancelled")
    await simulator.cancel(cancelled.provider_id)
    with pytest.raises(ProviderRejected, match="is cancelled"):
        await simulator.report(cancelled.provider_id)


async def test_a_verification_times_out_after_its_window(simulator: SimulatorProvider, clock: Clock) -> None:
    number = await simulator.acquire("TikTok", idempotency_key="late")
    clock.now += timedelta(minutes=15)
    assert (await simulator.get_verification(number.provider_id)).state is ProviderState.TIMED_OUT
    with pytest.raises(UnknownNumber):
        await simulator.deliver(number.phone_number, "Your code 1234")
    with pytest.raises(ProviderRejected, match="timed_out"):
        await simulator.cancel(number.provider_id)
    assert await simulator.messages(number.provider_id, ReservationKind.VERIFICATION) == []


async def test_a_rental_receives_until_it_ends(simulator: SimulatorProvider, clock: Clock) -> None:
    rental = await simulator.rent("Telegram", 7, idempotency_key="rental:1", area_code="212")
    assert (rental.kind, rental.state, rental.expires_at) == (
        ReservationKind.RENTAL,
        ProviderState.ACTIVE,
        START + timedelta(days=7),
    )
    assert rental.phone_number.startswith("+1212")
    assert rental.cost == ProviderPrice(amount=Decimal("3.15"), currency="USD")
    assert await simulator.rent("Telegram", 7, idempotency_key="rental:1") == rental
    texts = ["Telegram code 55555", "Your login code: 66666", "no code in this one"]
    for offset, body in enumerate(texts):
        clock.now = START + timedelta(days=offset)
        await simulator.deliver(rental.phone_number, body)
    received = await simulator.messages(rental.provider_id, ReservationKind.RENTAL)
    assert [(m.text, m.code) for m in received] == list(zip(texts, ["55555", "66666", None], strict=True))
    assert (await simulator.get_rental(rental.provider_id)).state is ProviderState.ACTIVE
    clock.now = START + timedelta(days=7)
    assert (await simulator.get_rental(rental.provider_id)).state is ProviderState.EXPIRED
    with pytest.raises(UnknownNumber):
        await simulator.deliver(rental.phone_number, "late 1234")
    with pytest.raises(ProviderRejected, match="expired"):
        await simulator.extend(rental.provider_id, 1)
    with pytest.raises(ProviderRejected, match="expired"):
        await simulator.release(rental.provider_id)


async def test_extend_moves_the_end_and_returns_its_cost(simulator: SimulatorProvider, clock: Clock) -> None:
    rental = await simulator.rent("Uber", 1, idempotency_key="rental:2")
    clock.now += timedelta(hours=20)
    extension = await simulator.extend(rental.provider_id, 7)
    assert extension.provider_id == rental.provider_id
    assert extension.expires_at == START + timedelta(days=8)
    assert extension.cost == ProviderPrice(amount=Decimal("2.10"), currency="USD")
    assert (await simulator.get_rental(rental.provider_id)).expires_at == START + timedelta(days=8)
    with pytest.raises(ProviderUnsupportedOption, match="3 is not offered"):
        await simulator.extend(rental.provider_id, 3)
    clock.now += timedelta(days=2)  # past the first end, inside the extension
    await simulator.deliver(rental.phone_number, "code 2468")


async def test_release_only_an_active_rental(simulator: SimulatorProvider) -> None:
    rental = await simulator.rent("Google", 14, idempotency_key="rental:3")
    await simulator.release(rental.provider_id)
    await simulator.release(rental.provider_id)
    assert (await simulator.get_rental(rental.provider_id)).state is ProviderState.REFUNDED
    with pytest.raises(UnknownNumber):
        await simulator.deliver(rental.phone_number, "code 1357")
    with pytest.raises(ProviderRejected, match="refunded"):
        await simulator.extend(rental.provider_id, 1)


async def test_rentals_sell_only_what_can_be_rented(simulator: SimulatorProvider, session_factory) -> None:
    with pytest.raises(ProviderUnsupportedOption):
        await simulator.rent("Telegram", 3, idempotency_key="x")
    with pytest.raises(ProviderNotFound, match="can not be rented"):
        await simulator.rent("Facebook", 7, idempotency_key="y")
    assert await reservations(session_factory) == 0


async def test_unknown_ids_and_the_wrong_kind_are_not_found(simulator: SimulatorProvider) -> None:
    verification = await simulator.acquire("WhatsApp", idempotency_key="v")
    rental = await simulator.rent("WhatsApp", 1, idempotency_key="r")
    calls = [
        simulator.get_verification(str(uuid.uuid4())),
        simulator.get_verification("../rentals/1"),
        simulator.get_verification(rental.provider_id),
        simulator.cancel(rental.provider_id),
        simulator.report(rental.provider_id),
        simulator.messages(rental.provider_id, ReservationKind.VERIFICATION),
        simulator.get_rental(verification.provider_id),
        simulator.extend(verification.provider_id, 1),
        simulator.release(verification.provider_id),
        simulator.messages(verification.provider_id, ReservationKind.RENTAL),
    ]
    for call in calls:
        with pytest.raises(ProviderNotFound):
            await call


async def test_the_catalog_half_is_unchanged(simulator: SimulatorProvider) -> None:
    rentable = {s.name for s in await simulator.list_services(ReservationKind.RENTAL)}
    assert rentable == {"WhatsApp", "Telegram", "Google", "Uber"}
    assert len(await simulator.list_services(ReservationKind.VERIFICATION)) == 8
    assert (await simulator.rental_price("Google", 30)).amount == Decimal("12.00")
    assert (await simulator.verification_price("Instagram")).amount == Decimal("0.45")
    await simulator.aclose()


async def test_expiry_lives_in_the_database(simulator: SimulatorProvider, session_factory) -> None:
    """What another process (or a test) writes is what the simulator answers: no state kept in memory."""
    number = await simulator.acquire("WhatsApp", idempotency_key="shared")
    assert (await simulator.get_verification(number.provider_id)).state is ProviderState.PENDING
    async with session_factory() as session:
        await session.execute(
            text("UPDATE simulator_reservations SET expires_at = :at WHERE phone_number = :number"),
            {"at": START - timedelta(seconds=1), "number": number.phone_number},
        )
        await session.commit()
    assert (await simulator.get_verification(number.provider_id)).state is ProviderState.TIMED_OUT
    with pytest.raises(UnknownNumber):
        await simulator.deliver(number.phone_number, "Your code 1234")
