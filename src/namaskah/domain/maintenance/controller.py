"""Dev-mode routes to send a ping through the job queue and read it back (404 in production)."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from namaskah.db.session import service_provider
from namaskah.domain.maintenance.schemas import PingCreate, PingRead
from namaskah.domain.maintenance.service import PingService
from namaskah.lib.errors import DomainError
from namaskah.lib.logging import bound_context


class PingNotFound(DomainError):
    status_code = 404
    code = "ping_not_found"
    title = "Ping not found"


class PingController(Controller):
    path = "/v1/dev/pings"
    tags = ["dev"]
    dependencies = {"pings": service_provider(PingService)}

    @post("/", status_code=HTTP_202_ACCEPTED, summary="Queue a ping job")
    async def create(self, data: JSONBody[PingCreate], pings: NamedDependency[PingService]) -> PingRead:
        await pings.request(data.token)
        return PingRead(token=data.token, request_id=bound_context().get("request_id"), received_at=None)

    @get("/{token:str}", summary="Read a ping recorded by a worker")
    async def read(self, token: FromPath[str], pings: NamedDependency[PingService]) -> PingRead:
        ping = await pings.find(token)
        if ping is None:
            raise PingNotFound(f"No ping {token!r} has been recorded yet")
        return PingRead(token=ping.token, request_id=ping.request_id, received_at=ping.received_at)
