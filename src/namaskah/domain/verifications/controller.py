"""`/v1/verifications`: buy a number for one code, follow it, cancel it while no SMS arrived."""

from __future__ import annotations

import uuid
from datetime import timedelta

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.catalog.pricing import ExchangeRates
from namaskah.domain.verifications.events import follow
from namaskah.domain.verifications.models import Verification
from namaskah.domain.verifications.schemas import VerificationCreate, VerificationList, VerificationRead
from namaskah.domain.verifications.service import VerificationService
from namaskah.lib.idempotency import IdempotencyKey
from namaskah.lib.pagination import Limit, Offset


def provide_verifications(db_session: NamedDependency[AsyncSession], state: State) -> VerificationService:
    settings = state.settings
    return VerificationService(
        session=db_session,
        rates=ExchangeRates(rates=settings.exchange_rates),
        window=timedelta(seconds=settings.verification_window),
    )


async def _read(service: VerificationService, verification: Verification) -> VerificationRead:
    messages = await service.messages_of([verification.id])
    return VerificationRead.of(verification, messages[verification.id])


class VerificationController(Controller):
    path = "/v1/verifications"
    tags = ["verifications"]
    dependencies = {
        **account_dependencies,
        "verifications": Provide(provide_verifications, sync_to_thread=False),
    }

    @post("/", status_code=HTTP_201_CREATED, summary="Buy a number for one verification code (charged now)")
    async def create(
        self,
        data: JSONBody[VerificationCreate],
        principal: NamedDependency[Principal],
        verifications: NamedDependency[VerificationService],
        idempotency_key: IdempotencyKey = None,
    ) -> VerificationRead:
        principal.require(Scope.VERIFICATIONS_WRITE)
        user = principal.user
        verification = await verifications.purchase(user.id, user.tier, data, idempotency_key)
        return await _read(verifications, verification)

    @get("/", summary="The caller's verifications, newest first")
    async def list_verifications(
        self,
        principal: NamedDependency[Principal],
        verifications: NamedDependency[VerificationService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> VerificationList:
        principal.require(Scope.VERIFICATIONS_READ)
        rows, total = await verifications.list_for(principal.user.id, limit=limit, offset=offset)
        messages = await verifications.messages_of([row.id for row in rows])
        return VerificationList(items=[VerificationRead.of(row, messages[row.id]) for row in rows], total=total)

    @get("/{verification_id:uuid}", summary="One of the caller's verifications, with its messages")
    async def show(
        self,
        verification_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        verifications: NamedDependency[VerificationService],
    ) -> VerificationRead:
        principal.require(Scope.VERIFICATIONS_READ)
        return await _read(verifications, await verifications.get_for(principal.user.id, verification_id))

    @get("/{verification_id:uuid}/events", summary="Status changes and messages as Server-Sent Events")
    async def events(
        self,
        verification_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        verifications: NamedDependency[VerificationService],
        state: State,
    ) -> ServerSentEvent:
        principal.require(Scope.VERIFICATIONS_READ)
        # Another user's id is a 404 now, as a problem document, not an empty stream.
        await verifications.get_for(principal.user.id, verification_id)
        interval = state.settings.verification_events_interval
        return ServerSentEvent(follow(state.session_factory, principal.user.id, verification_id, interval=interval))

    @post("/{verification_id:uuid}/cancel", status_code=HTTP_200_OK, summary="Cancel and refund, before any SMS")
    async def cancel(
        self,
        verification_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        verifications: NamedDependency[VerificationService],
    ) -> VerificationRead:
        principal.require(Scope.VERIFICATIONS_WRITE)
        return await _read(verifications, await verifications.cancel(principal.user.id, verification_id))
