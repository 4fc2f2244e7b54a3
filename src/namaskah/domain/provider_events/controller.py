"""`POST /v1/providers/textverified/events`: TextVerified's webhooks, signature checked on the raw body, stored once,
answered at once; a job applies them."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK

from namaskah.db.session import service_provider
from namaskah.domain.provider_events.errors import ProviderEventsNotConfigured
from namaskah.domain.provider_events.schemas import ProviderEventAck, parse_event
from namaskah.domain.provider_events.service import ProviderEventService
from namaskah.domain.provider_events.signature import SIGNATURE_HEADER, verify

PROVIDER = "textverified"
# An SMS event is well under 2 KiB; a larger body is no event of theirs and is refused before it is read whole.
MAX_BODY = 64 * 1024


class TextVerifiedEventController(Controller):
    path = "/v1/providers/textverified/events"
    tags = ["providers"]
    dependencies = {"provider_events": service_provider(ProviderEventService)}

    @post(
        "/",
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_BODY,
        summary="TextVerified webhook (signed with the account's webhook secret)",
    )
    async def receive(
        self, request: Request[Any, Any, Any], provider_events: NamedDependency[ProviderEventService], state: State
    ) -> ProviderEventAck:
        secret: str = state.settings.textverified_webhook_secret
        if not secret:
            raise ProviderEventsNotConfigured("TEXTVERIFIED_WEBHOOK_SECRET is not set: pushes can not be verified")
        body = await request.body()
        verify(body, request.headers.get(SIGNATURE_HEADER), secret)  # before the body is parsed at all
        envelope, payload = parse_event(body)
        # No age limit on `occurredAt`: the vendor signs no send time (only the body, whose `occurredAt` its retries
        # keep for as long as they back off, and a refused retry counts toward disabling the webhook), and a replayed
        # body repeats its signed `id`, which the unique key already stores nothing for. Rows are never pruned.
        stored = await provider_events.receive(PROVIDER, envelope, payload)
        return ProviderEventAck(id=envelope.id, duplicate=not stored)
