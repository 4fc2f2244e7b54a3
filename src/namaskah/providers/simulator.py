"""The embedded default provider: USD-priced services, and numbers whose state every process shares via the database."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.lib.errors import DomainError
from namaskah.providers.base import (
    ProviderExtension,
    ProviderMessage,
    ProviderNumber,
    ProviderPrice,
    ProviderService,
    ProviderState,
    ReservationKind,
)
from namaskah.providers.errors import (
    ProviderNotFound,
    ProviderOutOfStock,
    ProviderPriceExceeded,
    ProviderRejected,
    ProviderUnavailable,
    ProviderUnsupportedOption,
)
from namaskah.providers.simulator_models import SimulatorMessage, SimulatorReservation

if TYPE_CHECKING:
    from namaskah.providers.base import SmsProvider

# Service name: (verification price, rental price per day or None when it can not be rented), in USD.
SERVICES: dict[str, tuple[Decimal, Decimal | None]] = {
    "WhatsApp": (Decimal("0.75"), Decimal("0.50")),
    "Telegram": (Decimal("0.60"), Decimal("0.45")),
    "Google": (Decimal("0.50"), Decimal("0.40")),
    "Facebook": (Decimal("0.40"), None),
    "Instagram": (Decimal("0.45"), None),
    "Uber": (Decimal("0.35"), Decimal("0.30")),
    "Discord": (Decimal("0.30"), None),
    "TikTok": (Decimal("0.55"), None),
}
CURRENCY = "USD"
VERIFICATION_WINDOW = timedelta(minutes=15)
# Scenario hooks, reachable through any caller that passes an area code on: neither is a real US area code, so a
# genuine request never meets them.
OUT_OF_STOCK_AREA_CODE = "000"  # acquire/rent answer ProviderOutOfStock
UNAVAILABLE_AREA_CODE = "999"  # acquire/rent answer ProviderUnavailable (Retry-After 1)
AREA_CODES = ("201", "212", "305", "312", "415", "512", "617", "702", "818", "917")
# The first run of 4 to 8 ASCII digits standing alone: longer runs (a phone number) are not codes, and \d would
# also take other scripts' digits.
CODE_PATTERN = re.compile(r"(?<![0-9])[0-9]{4,8}(?![0-9])")
_AREA_CODE = re.compile(r"[0-9]{3}")
# Draws of a random number before giving up; a clash needs the same number drawn twice among 8 million.
_NUMBER_DRAWS = 5
# Extensions that found the rental changed under them (another extension) before giving up.
_EXTEND_ATTEMPTS = 5

_R = SimulatorReservation
_PENDING = (ProviderState.PENDING,)
_ACTIVE = (ProviderState.ACTIVE,)
_RUN_OUT = {ProviderState.PENDING: ProviderState.TIMED_OUT, ProviderState.ACTIVE: ProviderState.EXPIRED}
_DELIVERABLE = or_(
    and_(_R.kind == ReservationKind.VERIFICATION.value, _R.state == ProviderState.PENDING.value),
    and_(_R.kind == ReservationKind.RENTAL.value, _R.state == ProviderState.ACTIVE.value),
)


class UnknownNumber(DomainError):
    status_code = 404
    code = "unknown_number"
    title = "Unknown number"


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """An SMS the simulator delivered, and the reservation whose number received it."""

    reservation_id: str
    kind: ReservationKind
    message: ProviderMessage


def parse_code(text: str) -> str | None:
    match = CODE_PATTERN.search(text)
    return match.group() if match else None


class SimulatorProvider:
    """A complete `SmsProvider` with no network: it stands for an external system, so every call runs in a short
    transaction of its own (never the caller's) on `sessions`, and the API, the workers and the CLI all see the
    same numbers. `deliver` plays the carrier (the dev route `POST /v1/dev/simulator/messages`).

    Verifications wait 15 minutes for one SMS (the first completes them); rentals receive any number of SMS
    until they end. Repeating `cancel`, `report` or `release` after it succeeded changes nothing (jobs may run
    twice). Area code "000" is out of stock and "999" is unavailable, for tests of those answers."""

    name = "simulator"
    rental_days = frozenset({1, 7, 14, 30})

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    async def aclose(self) -> None:
        return None  # the engine behind `sessions` belongs to whoever built it

    # --- catalog --------------------------------------------------------------------------------------------

    async def list_services(self, kind: ReservationKind) -> list[ProviderService]:
        rentable = kind is ReservationKind.RENTAL
        return [ProviderService(name=name, kind=kind) for name, (_, day) in SERVICES.items() if not rentable or day]

    async def verification_price(
        self, service: str, *, area_code: bool = False, carrier: bool = False
    ) -> ProviderPrice:
        return ProviderPrice(amount=self._prices(service)[0], currency=CURRENCY)

    async def rental_price(self, service: str, days: int, *, area_code: bool = False) -> ProviderPrice:
        self._check_days(days)
        per_day = self._prices(service)[1]
        if per_day is None:
            raise ProviderNotFound(f"{service} can not be rented")
        return ProviderPrice(amount=per_day * days, currency=CURRENCY)

    # --- verifications --------------------------------------------------------------------------------------

    async def acquire(
        self,
        service: str,
        *,
        idempotency_key: str,
        area_code: str | None = None,
        carrier: str | None = None,
        max_price: Decimal | None = None,
    ) -> ProviderNumber:
        key = _idempotency_key(idempotency_key)
        price = (await self.verification_price(service)).amount
        if max_price is not None and price > max_price:
            raise ProviderPriceExceeded(f"{service} costs {price} {CURRENCY}, above the limit of {max_price}")
        kind = ReservationKind.VERIFICATION
        return await self._create(kind, service, key=key, area_code=area_code, cost=price, lasts=VERIFICATION_WINDOW)

    async def get_verification(self, provider_id: str) -> ProviderNumber:
        async with self._sessions() as session:
            return self._number(await _load(session, provider_id, ReservationKind.VERIFICATION))

    async def messages(self, provider_id: str, kind: ReservationKind) -> list[ProviderMessage]:
        async with self._sessions() as session:
            reservation = await _load(session, provider_id, kind)
            rows = await session.scalars(
                select(SimulatorMessage)
                .where(SimulatorMessage.reservation_id == reservation.id)
                .order_by(SimulatorMessage.received_at, SimulatorMessage.id)
            )
            return [_message(row) for row in rows]

    async def cancel(self, provider_id: str) -> None:
        # A message completes the verification in the same conditional update, so "pending" means nothing arrived.
        await self._transition(provider_id, ReservationKind.VERIFICATION, _PENDING, ProviderState.CANCELLED)

    async def report(self, provider_id: str) -> None:
        # Also after the window: reporting a number that never received its code is the point.
        allowed = (ProviderState.PENDING, ProviderState.COMPLETED)
        await self._transition(provider_id, ReservationKind.VERIFICATION, allowed, ProviderState.REPORTED, expired=True)

    # --- rentals --------------------------------------------------------------------------------------------

    async def rent(
        self, service: str, days: int, *, idempotency_key: str, area_code: str | None = None
    ) -> ProviderNumber:
        key = _idempotency_key(idempotency_key)
        price = (await self.rental_price(service, days)).amount
        kind, lasts = ReservationKind.RENTAL, timedelta(days=days)
        return await self._create(kind, service, key=key, area_code=area_code, cost=price, lasts=lasts)

    async def get_rental(self, provider_id: str) -> ProviderNumber:
        async with self._sessions() as session:
            return self._number(await _load(session, provider_id, ReservationKind.RENTAL))

    async def extend(self, provider_id: str, days: int) -> ProviderExtension:
        self._check_days(days)
        for _ in range(_EXTEND_ATTEMPTS):
            async with self._sessions() as session, session.begin():
                rental = await _load(session, provider_id, ReservationKind.RENTAL)
                if (state := self._number(rental).state) is not ProviderState.ACTIVE:
                    raise ProviderRejected(f"The rental {provider_id} is {state.value}; only an active one extends")
                cost = (await self.rental_price(rental.service, days)).amount
                ends = rental.expires_at + timedelta(days=days)
                # Compare-and-set on the old end: two extensions at once both count, on SQLite too (no FOR UPDATE).
                moved = await session.scalar(
                    update(_R)
                    .where(_R.id == rental.id, _R.state == ProviderState.ACTIVE.value)
                    .where(_R.expires_at == rental.expires_at)
                    .values(expires_at=ends)
                    .returning(_R.id)
                    .execution_options(synchronize_session=False)
                )
            if moved is not None:
                return ProviderExtension(provider_id=provider_id, expires_at=ends, cost=_usd(cost))
        raise ProviderUnavailable(f"Rental {provider_id} kept changing during the extension; read it and try again")

    async def release(self, provider_id: str) -> None:
        await self._transition(provider_id, ReservationKind.RENTAL, _ACTIVE, ProviderState.REFUNDED)

    # --- the carrier side -----------------------------------------------------------------------------------

    async def deliver(self, phone_number: str, text: str, *, sender: str | None = None) -> Delivery:
        """Deliver an SMS to the pending verification or active rental holding `phone_number`, else UnknownNumber."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            # One conditional update picks the reservation and completes a verification: of two SMS racing to a
            # verification, or an SMS racing its cancel, exactly one wins.
            found = (
                await session.execute(
                    update(_R)
                    .where(_R.phone_number == phone_number, _R.expires_at > now, _DELIVERABLE)
                    .values(
                        state=case(
                            (_R.kind == ReservationKind.VERIFICATION.value, ProviderState.COMPLETED.value),
                            else_=_R.state,
                        )
                    )
                    .returning(_R.id, _R.kind)
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if found is None:
                raise UnknownNumber(f"No pending verification or active rental holds {phone_number}")
            row = SimulatorMessage(
                id=uuid7(), reservation_id=found.id, text=text, code=parse_code(text), sender=sender, received_at=now
            )
            session.add(row)
            message = _message(row)
        return Delivery(reservation_id=str(found.id), kind=ReservationKind(found.kind), message=message)

    # --- internals ------------------------------------------------------------------------------------------

    async def _create(
        self, kind: ReservationKind, service: str, *, key: str, area_code: str | None, cost: Decimal, lasts: timedelta
    ) -> ProviderNumber:
        if (earlier := await self._by_key(key, kind, service)) is not None:
            return earlier
        _scenario(area_code)
        now = self._clock()
        state = ProviderState.PENDING if kind is ReservationKind.VERIFICATION else ProviderState.ACTIVE
        for _ in range(_NUMBER_DRAWS):
            row = _R(
                id=uuid7(),
                kind=kind.value,
                service=service,
                phone_number=_draw_number(area_code),
                state=state.value,
                idempotency_key=key,
                cost=cost,
                created_at=now,
                expires_at=now + lasts,
            )
            try:
                async with self._sessions() as session, session.begin():
                    session.add(row)
                    created = self._number(row)
            except IntegrityError:
                # The unique key: a concurrent call with this key won, and its reservation is the answer.
                if (earlier := await self._by_key(key, kind, service)) is not None:
                    return earlier
                continue  # else the drawn number was taken: draw another
            return created
        raise ProviderOutOfStock(f"No free number for {service} in area code {area_code}")

    async def _by_key(self, key: str, kind: ReservationKind, service: str) -> ProviderNumber | None:
        async with self._sessions() as session:
            row = await session.scalar(select(_R).where(_R.idempotency_key == key))
            if row is None:
                return None
            if row.kind != kind.value or row.service != service:
                raise ProviderRejected("The idempotency key was already used for a different request")
            return self._number(row)

    async def _transition(
        self,
        provider_id: str,
        kind: ReservationKind,
        allowed: tuple[ProviderState, ...],
        to: ProviderState,
        *,
        expired: bool = False,
    ) -> None:
        """Move the reservation from one of `allowed` to `to` (not once it ran out unless `expired`); a repeat that
        finds it already there changes nothing, anything else is ProviderRejected."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            reservation = await _load(session, provider_id, kind)
            conditions = [_R.id == reservation.id, _R.state.in_([state.value for state in allowed])]
            if not expired:
                conditions.append(_R.expires_at > now)
            changed = await session.scalar(
                update(_R)
                .where(*conditions)
                .values(state=to.value)
                .returning(_R.id)
                .execution_options(synchronize_session=False)
            )
            if changed is not None:
                return
            await session.refresh(reservation)  # what made the update miss may have committed after our read
            if reservation.state == to.value:
                return  # a repeat (or a concurrent twin) already did it
            current = self._number(reservation).state
        raise ProviderRejected(f"The {kind.value} {provider_id} is {current.value}; it can not become {to.value}")

    def _number(self, row: SimulatorReservation) -> ProviderNumber:
        state = ProviderState(row.state)
        if row.expires_at <= self._clock():
            # Expiry is read, not written: no sweeper needed, and every process agrees on it.
            state = _RUN_OUT.get(state, state)
        return ProviderNumber(
            provider_id=str(row.id),
            kind=ReservationKind(row.kind),
            service=row.service,
            phone_number=row.phone_number,
            state=state,
            created_at=row.created_at,
            expires_at=row.expires_at,
            cost=_usd(row.cost),
        )

    def _check_days(self, days: int) -> None:
        if days not in self.rental_days:
            offered = ", ".join(str(d) for d in sorted(self.rental_days))
            raise ProviderUnsupportedOption(f"Rentals last {offered} days; {days} is not offered")

    def _prices(self, service: str) -> tuple[Decimal, Decimal | None]:
        if service not in SERVICES:
            raise ProviderNotFound(f"The simulator has no service {service!r}")
        return SERVICES[service]


async def _load(session: AsyncSession, provider_id: str, kind: ReservationKind) -> SimulatorReservation:
    try:
        key = uuid.UUID(provider_id)
    except ValueError:
        raise ProviderNotFound(f"No {kind.value} {provider_id!r} at the simulator") from None
    row = await session.get(_R, key)
    if row is None or row.kind != kind.value:
        raise ProviderNotFound(f"No {kind.value} {provider_id!r} at the simulator")
    return row


def _idempotency_key(key: str) -> str:
    trimmed = key.strip()
    if not 1 <= len(trimmed) <= 256:
        raise ValueError("an idempotency key must be 1 to 256 characters")
    return trimmed


def _scenario(area_code: str | None) -> None:
    if area_code == OUT_OF_STOCK_AREA_CODE:
        raise ProviderOutOfStock(f"No number in area code {area_code} (simulator scenario)")
    if area_code == UNAVAILABLE_AREA_CODE:
        raise ProviderUnavailable("The simulator is unavailable (scenario area code 999)", retry_after=1)
    if area_code is not None and not _AREA_CODE.fullmatch(area_code):
        raise ProviderUnsupportedOption("An area code is three digits")


def _draw_number(area_code: str | None) -> str:
    area = area_code or secrets.choice(AREA_CODES)
    exchange = 200 + secrets.randbelow(800)  # a US exchange never starts with 0 or 1
    return f"+1{area}{exchange}{secrets.randbelow(10_000):04d}"


def _usd(amount: Decimal) -> ProviderPrice:
    return ProviderPrice(amount=amount, currency=CURRENCY)


def _message(row: SimulatorMessage) -> ProviderMessage:
    return ProviderMessage(
        provider_id=str(row.id), text=row.text, code=row.code, received_at=row.received_at, sender=row.sender
    )


if TYPE_CHECKING:
    # mypy proves here that the simulator satisfies the protocol the domain codes against.
    def _conforms(simulator: SimulatorProvider) -> SmsProvider:
        return simulator
