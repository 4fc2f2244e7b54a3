"""`/v1/rentals`: rent a number for days, read its messages, extend it, release it early."""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.catalog.pricing import ExchangeRates
from namaskah.domain.rentals.schemas import (
    RentalCreate,
    RentalExtend,
    RentalList,
    RentalMessageList,
    RentalMessageRead,
    RentalRead,
)
from namaskah.domain.rentals.service import RentalService
from namaskah.lib.idempotency import IdempotencyKey
from namaskah.lib.pagination import Limit, Offset
from namaskah.settings import Settings


def offered_days(settings: Settings) -> frozenset[int]:
    """The rental lengths of the configured provider, a class attribute: the request makes no provider call."""
    if settings.sms_provider == "textverified":
        from namaskah.providers.textverified import TextVerifiedProvider  # noqa: PLC0415 - httpx only when used

        return TextVerifiedProvider.rental_days
    from namaskah.providers.simulator import SimulatorProvider  # noqa: PLC0415 - mirrors the branch above

    return SimulatorProvider.rental_days


def provide_rentals(db_session: NamedDependency[AsyncSession], state: State) -> RentalService:
    settings = state.settings
    return RentalService(
        session=db_session, rates=ExchangeRates(rates=settings.exchange_rates), rental_days=offered_days(settings)
    )


class RentalController(Controller):
    path = "/v1/rentals"
    tags = ["rentals"]
    dependencies = {
        **account_dependencies,
        "rentals": Provide(provide_rentals, sync_to_thread=False),
    }

    @post("/", status_code=HTTP_201_CREATED, summary="Rent a number for days (charged now; Idempotency-Key optional)")
    async def create(
        self,
        data: JSONBody[RentalCreate],
        principal: NamedDependency[Principal],
        rentals: NamedDependency[RentalService],
        idempotency_key: IdempotencyKey = None,
    ) -> RentalRead:
        principal.require(Scope.RENTALS_WRITE)
        user = principal.user
        return RentalRead.of(await rentals.rent(user.id, user.tier, data, idempotency_key))

    @get("/", summary="The caller's rentals, newest first")
    async def list_rentals(
        self,
        principal: NamedDependency[Principal],
        rentals: NamedDependency[RentalService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> RentalList:
        principal.require(Scope.RENTALS_READ)
        rows, total = await rentals.list_for(principal.user.id, limit=limit, offset=offset)
        return RentalList(items=[RentalRead.of(row) for row in rows], total=total)

    @get("/{rental_id:uuid}", summary="One of the caller's rentals")
    async def show(
        self,
        rental_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        rentals: NamedDependency[RentalService],
    ) -> RentalRead:
        principal.require(Scope.RENTALS_READ)
        return RentalRead.of(await rentals.get_for(principal.user.id, rental_id))

    @get("/{rental_id:uuid}/messages", summary="The SMS the rented number received, oldest first")
    async def messages(
        self,
        rental_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        rentals: NamedDependency[RentalService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> RentalMessageList:
        principal.require(Scope.RENTALS_READ)
        rows, total = await rentals.messages_for(principal.user.id, rental_id, limit=limit, offset=offset)
        return RentalMessageList(items=[RentalMessageRead.of(row) for row in rows], total=total)

    @post("/{rental_id:uuid}/extend", status_code=HTTP_200_OK, summary="Add days to an active rental (charged now)")
    async def extend(
        self,
        rental_id: FromPath[uuid.UUID],
        data: JSONBody[RentalExtend],
        principal: NamedDependency[Principal],
        rentals: NamedDependency[RentalService],
    ) -> RentalRead:
        principal.require(Scope.RENTALS_WRITE)
        return RentalRead.of(await rentals.extend(principal.user.id, rental_id, data.days))

    @post("/{rental_id:uuid}/release", status_code=HTTP_200_OK, summary="End an active rental, refund unused days")
    async def release(
        self,
        rental_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        rentals: NamedDependency[RentalService],
    ) -> RentalRead:
        principal.require(Scope.RENTALS_WRITE)
        return RentalRead.of(await rentals.release(principal.user.id, rental_id))
