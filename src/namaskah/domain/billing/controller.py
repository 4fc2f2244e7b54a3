"""`/v1/billing/topups` (start and read a top-up), `POST /v1/webhooks/paystack` (Paystack's events: checked,
stored once, answered at once) and `/v1/admin/billing/flags` (what operators must look at)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.admin.deps import admin_dependencies
from namaskah.domain.apikeys.schemas import Scope
from namaskah.domain.billing.checkout import Checkout
from namaskah.domain.billing.deps import checkout_dependencies
from namaskah.domain.billing.errors import PaystackNotConfigured
from namaskah.domain.billing.events import (
    SIGNATURE_HEADER,
    PaystackEventService,
    as_ip,
    check_source,
    event_key,
    networks,
    parse,
    source_address,
    verify_signature,
)
from namaskah.domain.billing.schemas import FlagList, FlagRead, TopupCreate, TopupCreated, TopupRead, WebhookAck
from namaskah.domain.billing.service import TopupService
from namaskah.lib.pagination import Limit, Offset

# Paystack's events are a few KiB; a larger body is refused before it is read whole.
MAX_EVENT_BODY = 256 * 1024


class TopupController(Controller):
    path = "/v1/billing/topups"
    tags = ["billing"]
    dependencies = {**account_dependencies, **checkout_dependencies}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Start a top-up: answers Paystack's checkout URL",
        description="422 `amount_out_of_range` or `unsupported_currency`; 503 `paystack_unavailable` or 502 "
        "`paystack_refused` when Paystack could not start it (the top-up is then `failed`).",
    )
    async def create(
        self, data: JSONBody[TopupCreate], principal: NamedDependency[Principal], checkout: NamedDependency[Checkout]
    ) -> TopupCreated:
        principal.require_session("top up the wallet")
        topup = await checkout.start(principal.user.id, principal.user.email, data.amount, data.currency)
        return TopupCreated.of(topup)

    @get(
        "/{reference:str}",
        summary="A top-up of the caller's, verified with Paystack while pending",
        description="404 `topup_not_found` for a reference that is not the caller's.",
    )
    async def show(
        self, reference: FromPath[str], principal: NamedDependency[Principal], checkout: NamedDependency[Checkout]
    ) -> TopupRead:
        principal.require(Scope.WALLET_READ)
        return TopupRead.of(await checkout.refresh(principal.user.id, reference))


class PaystackWebhookController(Controller):
    """Outside the rate-limited router: Paystack sends from three addresses, and a 429 would only make it retry
    what we should take now. The signature is checked before anything is parsed or stored.

    An acknowledgement is one short transaction (the event and its outbox row), committed before the 200. Its job
    is published by the outbox sweep (every OUTBOX_SWEEP_INTERVAL, in batches), not after each response as other
    routes do: that second transaction and broker call per event would halve the acknowledgements a process can
    give while Paystack replays a backlog, and nobody waits for this job, since the customer's own
    GET /v1/billing/topups/{reference} verifies with Paystack and credits at once."""

    path = "/v1/webhooks/paystack"
    tags = ["billing"]

    @post(
        "/",
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_EVENT_BODY,
        summary="Paystack webhook (x-paystack-signature: HMAC-SHA512 of the body with the secret key)",
        description="401 `bad_signature` and 403 `source_not_allowed` store nothing. An event is stored once under "
        "its key and applied by a job; a redelivery answers 200 with `duplicate: true`.",
    )
    async def receive(self, request: Request[Any, Any, Any], state: State) -> WebhookAck:
        settings = state.settings
        if not settings.paystack_key:
            raise PaystackNotConfigured("PAYSTACK_SECRET_KEY is not set: events can not be verified")
        peer = request.client.host if request.client else None
        source = source_address(
            peer, request.headers.get("x-forwarded-for"), networks(settings.paystack_trusted_proxies)
        )
        check_source(source, networks(settings.paystack_webhook_ips))
        body = await request.body()
        verify_signature(body, request.headers.get(SIGNATURE_HEADER), settings.paystack_key)
        envelope, payload = parse(body)
        async with state.session_factory() as session:
            stored = await PaystackEventService(session=session).receive(
                envelope, payload, event_key(envelope, body), as_ip(source)
            )
            await session.commit()  # a failed commit raises: a 5xx, and Paystack delivers again
        return WebhookAck(received=True, duplicate=not stored)


def provide_admin_topups(
    db_session: NamedDependency[AsyncSession], operator: NamedDependency[User], state: State
) -> TopupService:
    """Built from `operator`, like every admin service."""
    return TopupService(session=db_session, settings=state.settings)


class AdminBillingFlagController(Controller):
    path = "/v1/admin/billing/flags"
    tags = ["admin"]
    dependencies = {**admin_dependencies, "admin_topups": Provide(provide_admin_topups, sync_to_thread=False)}

    @get("/", summary="Billing problems for operators (mismatches, refund shortfalls, disputes), newest first")
    async def list_flags(
        self, admin_topups: NamedDependency[TopupService], limit: Limit = 50, offset: Offset = 0
    ) -> FlagList:
        rows, total = await admin_topups.flags(limit=limit, offset=offset)
        return FlagList(items=[FlagRead.of(flag) for flag in rows], total=total)
