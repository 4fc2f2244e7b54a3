"""The simulator under real commits and concurrent callers, as the API and workers share it across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.providers.base import ProviderState, ReservationKind
from namaskah.providers.errors import ProviderRejected
from namaskah.providers.simulator import SimulatorProvider, UnknownNumber
from namaskah.providers.simulator_models import SimulatorMessage, SimulatorReservation
from tests.support.databases import run_cli, settings_env

CALLERS = 20


@pytest.fixture
async def engines(isolated_database: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on one database of its own: two processes' pools, with real commits and real row locks."""
    first = create_async_engine(isolated_database, pool_size=CALLERS, max_overflow=0, pool_timeout=60)
    second = create_async_engine(isolated_database, pool_size=CALLERS, max_overflow=0, pool_timeout=60)
    yield first, second
    await first.dispose()
    await second.dispose()


async def count(engine: AsyncEngine, model: type[SimulatorReservation] | type[SimulatorMessage]) -> int:
    async with create_session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def settle(*calls):  # type: ignore[no-untyped-def]
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_one_key_buys_one_number_under_concurrency(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    api, worker = (SimulatorProvider(create_session_factory(engine)) for engine in engines)
    bought = await settle(
        *((api if i % 2 else worker).acquire("WhatsApp", idempotency_key="verification:42") for i in range(CALLERS))
    )
    assert all(not isinstance(b, BaseException) for b in bought), bought
    assert len({(b.provider_id, b.phone_number) for b in bought}) == 1
    rented = await settle(*(api.rent("Google", 7, idempotency_key="rental:42") for _ in range(CALLERS)))
    assert len({r.provider_id for r in rented}) == 1, rented
    assert await count(engines[0], SimulatorReservation) == 2


async def test_what_one_process_writes_the_other_reads(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    api, worker = (SimulatorProvider(create_session_factory(engine)) for engine in engines)
    number = await worker.acquire("Telegram", idempotency_key="verification:7")
    delivery = await api.deliver(number.phone_number, "Telegram code: 70707")
    assert await worker.messages(number.provider_id, ReservationKind.VERIFICATION) == [delivery.message]
    assert (await worker.get_verification(number.provider_id)).state is ProviderState.COMPLETED


async def test_of_racing_messages_and_a_cancel_exactly_one_wins(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    api, worker = (SimulatorProvider(create_session_factory(engine)) for engine in engines)
    number = await api.acquire("Uber", idempotency_key="verification:race")
    outcomes = await settle(
        worker.cancel(number.provider_id),
        *(api.deliver(number.phone_number, f"Uber code {1000 + i}") for i in range(CALLERS - 1)),
    )
    cancelled, deliveries = outcomes[0], outcomes[1:]
    delivered = [d for d in deliveries if not isinstance(d, BaseException)]
    assert all(isinstance(d, UnknownNumber) for d in deliveries if isinstance(d, BaseException)), deliveries
    state = (await api.get_verification(number.provider_id)).state
    if cancelled is None:
        assert (state, delivered) == (ProviderState.CANCELLED, [])
    else:
        assert isinstance(cancelled, ProviderRejected), cancelled
        assert (state, len(delivered)) == (ProviderState.COMPLETED, 1)
    assert await count(engines[0], SimulatorMessage) == len(delivered)


async def test_concurrent_extensions_all_count(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    api, worker = (SimulatorProvider(create_session_factory(engine)) for engine in engines)
    rental = await api.rent("Telegram", 1, idempotency_key="rental:ext")
    assert rental.expires_at is not None
    extensions = await settle(*((api if i % 2 else worker).extend(rental.provider_id, 1) for i in range(4)))
    assert all(not isinstance(e, BaseException) for e in extensions), extensions
    ends = sorted(e.expires_at for e in extensions)
    assert ends == [rental.expires_at + timedelta(days=n) for n in range(1, 5)]
    assert (await worker.get_rental(rental.provider_id)).expires_at == rental.expires_at + timedelta(days=4)


async def test_the_simulator_works_on_sqlite_as_in_dev_mode(tmp_path: Path) -> None:
    upgraded = run_cli("database", "upgrade", env=settings_env(DATABASE_URL="", DATA_DIR=str(tmp_path)))
    assert upgraded.returncode == 0, upgraded.stderr
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'namaskah.sqlite3'}")
    simulator = SimulatorProvider(create_session_factory(engine))
    try:
        bought = await settle(*(simulator.acquire("WhatsApp", idempotency_key="v") for _ in range(5)))
        assert len({b.provider_id for b in bought}) == 1, bought
        number = bought[0]
        delivery = await simulator.deliver(number.phone_number, "Your WhatsApp code 123-456 or 918273")
        assert delivery.message.code == "918273"
        with pytest.raises(ProviderRejected):
            await simulator.cancel(number.provider_id)
        rental = await simulator.rent("Uber", 7, idempotency_key="r")
        extensions = await settle(simulator.extend(rental.provider_id, 1), simulator.extend(rental.provider_id, 1))
        assert all(not isinstance(e, BaseException) for e in extensions), extensions
        assert (await simulator.get_rental(rental.provider_id)).expires_at == max(e.expires_at for e in extensions)
        await simulator.release(rental.provider_id)
        assert (await simulator.get_rental(rental.provider_id)).state is ProviderState.REFUNDED
    finally:
        await engine.dispose()
