"""TextVerified webhook pushes as the vendor sends them: each payload is checked against the callback schema its
OpenAPI document gives for the event, then signed as the document says (HMAC-SHA512, Base64, prefixed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from openapi_schema_validator import OAS30Validator

from tests.support.fake_textverified import vendor_document

SECRET = "whsec_T3stOnlyPushSecret0123456789abcdef"
PATH = "/v1/providers/textverified/events"


def callback_schemas() -> dict[str, dict[str, Any]]:
    """The payload schema of every webhook event the document lists, by event name, with every $ref inlined."""
    document = vendor_document()
    callbacks = document["paths"]["/api/pub/v2/webhook-events"]["get"]["callbacks"]
    found = {}
    for name, callback in callbacks.items():
        (operation,) = callback.values()
        found[name] = _inlined(operation["post"]["requestBody"]["content"]["application/json"]["schema"])
    return found


def component(name: str) -> dict[str, Any]:
    return _inlined({"$ref": f"#/components/schemas/{name}"})


def _inlined(node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inlined(vendor_document()["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
        return {key: _inlined(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item) for item in node]
    return node


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event(
    event_type: str,
    data: Any,
    *,
    event_id: str | None = None,
    attempt: int = 1,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """A whole push; one of a type the document lists must match that type's schema exactly."""
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    payload = {
        "attempt": attempt,
        "occurredAt": iso(occurred_at or datetime.now(UTC)),
        "data": data,
        "event": event_type,
        "id": event_id,
        "idempotencyKey": f"idem_{event_id}",
    }
    schema = callback_schemas().get(event_type)
    if schema is not None:
        OAS30Validator(schema).validate(payload)
    return payload


def sms_event(
    reservation_id: str | None,
    text: str | None,
    *,
    code: str | None = None,
    created_at: str | None = None,
    to: str = "+12015550123",
    sender: str | None = "22000",
    **options: Any,
) -> dict[str, Any]:
    data = {
        "from": sender,
        "to": to,
        "createdAt": created_at or iso(datetime.now(UTC)),
        "smsContent": text,
        "parsedCode": code,
        "encrypted": False,
        "reservationId": reservation_id,
    }
    return event("v2.sms.received", data, **options)


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signature(body: bytes, secret: str = SECRET) -> str:
    """Computed here from the document's steps, not with the code under test."""
    digest = hmac.new(secret.encode(), body, hashlib.sha512).digest()
    return "HMAC-SHA512=" + base64.b64encode(digest).decode()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Webhook-Signature": signature(body, secret), "Content-Type": "application/json"}
