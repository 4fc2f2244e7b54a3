"""`/v1/webhook-endpoints` and `/v1/webhook-deliveries`: partner endpoints, their deliveries, and replays."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.webhooks.deliveries import WebhookDeliveryService
from namaskah.domain.webhooks.models import webhook_message_id
from namaskah.domain.webhooks.schemas import (
    DeliveryList,
    DeliveryRead,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointRead,
    ReplayAccepted,
)
from namaskah.domain.webhooks.sender import url_policy
from namaskah.domain.webhooks.service import WebhookEndpointService
from namaskah.lib.pagination import Limit, Offset


def provide_endpoints(db_session: NamedDependency[AsyncSession], state: State) -> WebhookEndpointService:
    settings = state.settings
    return WebhookEndpointService(
        session=db_session, policy=url_policy(settings), dns_timeout=settings.webhook_connect_timeout
    )


def provide_deliveries(db_session: NamedDependency[AsyncSession]) -> WebhookDeliveryService:
    return WebhookDeliveryService(session=db_session)


dependencies = {
    **account_dependencies,
    "endpoints": Provide(provide_endpoints, sync_to_thread=False),
    "deliveries": Provide(provide_deliveries, sync_to_thread=False),
}


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["webhooks"]
    dependencies = dependencies

    @post(
        "/", status_code=HTTP_201_CREATED, summary="Register a URL for event types; its secret is in this answer only"
    )
    async def create(
        self,
        data: JSONBody[EndpointCreate],
        principal: NamedDependency[Principal],
        endpoints: NamedDependency[WebhookEndpointService],
    ) -> EndpointCreated:
        principal.require(Scope.WEBHOOKS_WRITE)
        endpoint, secret = await endpoints.register(principal.user.id, principal.user.tier, data)
        return EndpointCreated.of(endpoint, secret)

    @get("/", summary="The caller's endpoints, newest first (without secrets)")
    async def list_endpoints(
        self,
        principal: NamedDependency[Principal],
        endpoints: NamedDependency[WebhookEndpointService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> EndpointList:
        principal.require(Scope.WEBHOOKS_WRITE)
        rows, total = await endpoints.list_for(principal.user.id, limit=limit, offset=offset)
        return EndpointList(items=[EndpointRead.of(row) for row in rows], total=total)

    @get("/{endpoint_id:uuid}", summary="One of the caller's endpoints")
    async def show(
        self,
        endpoint_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        endpoints: NamedDependency[WebhookEndpointService],
    ) -> EndpointRead:
        principal.require(Scope.WEBHOOKS_WRITE)
        return EndpointRead.of(await endpoints.get_for(principal.user.id, endpoint_id))

    @delete("/{endpoint_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="Delete an endpoint and its deliveries")
    async def remove(
        self,
        endpoint_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        endpoints: NamedDependency[WebhookEndpointService],
    ) -> None:
        principal.require(Scope.WEBHOOKS_WRITE)
        await endpoints.delete_for(principal.user.id, endpoint_id)

    @post("/{endpoint_id:uuid}/enable", status_code=HTTP_200_OK, summary="Enable an endpoint disabled by failures")
    async def enable(
        self,
        endpoint_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        endpoints: NamedDependency[WebhookEndpointService],
    ) -> EndpointRead:
        principal.require(Scope.WEBHOOKS_WRITE)
        return EndpointRead.of(await endpoints.enable(principal.user.id, principal.user.tier, endpoint_id))

    @get("/{endpoint_id:uuid}/deliveries", summary="The endpoint's deliveries, newest first, with every attempt")
    async def deliveries_of(
        self,
        endpoint_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        deliveries: NamedDependency[WebhookDeliveryService],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> DeliveryList:
        principal.require(Scope.WEBHOOKS_WRITE)
        rows, total = await deliveries.list_for(principal.user.id, endpoint_id, limit=limit, offset=offset)
        items = [
            DeliveryRead.of(delivery, kind, webhook_message_id(delivery.id), attempts)
            for delivery, kind, attempts in rows
        ]
        return DeliveryList(items=items, total=total)


class WebhookDeliveryController(Controller):
    path = "/v1/webhook-deliveries"
    tags = ["webhooks"]
    dependencies = dependencies

    @post("/{delivery_id:uuid}/replay", status_code=HTTP_202_ACCEPTED, summary="Send a delivery again, same webhook-id")
    async def replay(
        self,
        delivery_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        deliveries: NamedDependency[WebhookDeliveryService],
    ) -> ReplayAccepted:
        principal.require(Scope.WEBHOOKS_WRITE)
        delivery = await deliveries.replay(principal.user.id, principal.user.tier, delivery_id, utcnow())
        return ReplayAccepted(id=delivery.id, webhook_id=webhook_message_id(delivery.id), status=delivery.status)
