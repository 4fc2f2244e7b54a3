"""The baseline of every script here: a bare Litestar app, no middleware, plugins, logging, auth or database.

`GET /health/live` is health_live.py's route; `GET /v1/me` (me_api_key.py's) answers a constant account of
the same shape as ours; `POST /v1/webhooks/paystack` (paystack_webhooks.py's) reads the body and answers our
acknowledgement's shape, checking and storing nothing; `POST /v1/providers/textverified/events`
(webhook_latency.py's) sends the body it read as one message to bare_queue.py's actor, which POSTs it to the
receiver, and answers our acknowledgement's shape.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, get, post

ME = {
    "id": "0190f3b2-7c4e-7a51-9d2f-3c8e5b1a6d40",
    "email": "bench@example.com",
    "tier": "enterprise",
    "balance": 0,
    "currency": "NGN",
    "totp_enabled": False,
    "kyc_level": "none",
}


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/v1/me")
async def me() -> dict[str, Any]:
    return ME


@post("/v1/webhooks/paystack", status_code=200)
async def paystack_webhook(request: Request[Any, Any, Any]) -> dict[str, bool]:
    await request.body()
    return {"received": True, "duplicate": False}


class _Envelope(msgspec.Struct):
    id: str


@post("/v1/providers/textverified/events", status_code=200)
async def provider_event(request: Request[Any, Any, Any]) -> dict[str, Any]:
    # Imported on the first push: the other scripts serve this app with no Redis configured.
    from bare_queue import forward  # noqa: PLC0415

    body = await request.body()
    forward.send(body.decode())
    return {"id": msgspec.json.decode(body, type=_Envelope).id, "duplicate": False}


app = Litestar(route_handlers=[live, me, paystack_webhook, provider_event], logging_config=None)
