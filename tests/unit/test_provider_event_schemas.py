"""The receiver's payload shapes are the vendor document's WebhookEvent.* schemas, names and casing included."""

from __future__ import annotations

import json

import msgspec
import pytest

from namaskah.domain.provider_events.errors import MalformedEvent
from namaskah.domain.provider_events.schemas import (
    EVENT_DATA,
    SmsReceived,
    WebhookEnvelope,
    parse_event,
    typed_data,
)
from tests.support.textverified_pushes import body_of, callback_schemas, event, sms_event


def wire_names(struct: type[msgspec.Struct]) -> set[str]:
    return set(struct.__struct_encode_fields__)


def test_every_event_the_document_lists_has_a_shape_and_no_other() -> None:
    assert set(EVENT_DATA) == set(callback_schemas())


@pytest.mark.parametrize("event_type", sorted(EVENT_DATA))
def test_each_shape_spells_its_schemas_fields_and_requires_what_it_requires(event_type: str) -> None:
    schema = callback_schemas()[event_type]
    assert wire_names(WebhookEnvelope) == set(schema["properties"])
    data_schema = schema["properties"]["data"]
    shape = EVENT_DATA[event_type]
    assert wire_names(shape) == set(data_schema["properties"])
    info = msgspec.inspect.type_info(shape)
    assert isinstance(info, msgspec.inspect.StructType)
    required = {field.encode_name for field in info.fields if field.required}
    assert required == set(data_schema["required"])
    envelope = msgspec.inspect.type_info(WebhookEnvelope)
    assert isinstance(envelope, msgspec.inspect.StructType)
    assert {field.encode_name for field in envelope.fields if field.required} == set(schema["required"])


def test_an_sms_event_as_the_vendor_sends_it_decodes() -> None:
    payload = sms_event("tv_res_1", "Your code is 482913", code="482913", created_at="2026-12-01T10:00:00.1234567Z")

    envelope, stored = parse_event(body_of(payload))

    assert (envelope.event, envelope.id, envelope.attempt) == ("v2.sms.received", payload["id"], 1)
    assert stored == payload
    sms = typed_data(envelope.event, envelope.data)
    assert isinstance(sms, SmsReceived)
    assert (sms.reservation_id, sms.sms_content, sms.parsed_code, sms.from_) == (
        "tv_res_1",
        "Your code is 482913",
        "482913",
        "22000",
    )
    assert sms.created_at.utcoffset() is not None


def test_an_unknown_event_type_decodes_with_its_data_as_it_came() -> None:
    envelope, _ = parse_event(body_of(event("v2.test", {"Anything": [1, 2]})))

    assert typed_data(envelope.event, envelope.data) is None
    assert envelope.data == {"Anything": [1, 2]}


def _pascal(payload: dict) -> dict:
    return {key[0].upper() + key[1:]: value for key, value in payload.items()}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(json.dumps(_pascal(sms_event("r", "t"))).encode(), id="PascalCase-envelope"),
        pytest.param(
            body_of({**sms_event("r", "t"), "data": _pascal(sms_event("r", "t")["data"])}), id="PascalCase-data"
        ),
        pytest.param(body_of({k: v for k, v in sms_event("r", "t").items() if k != "id"}), id="no-id"),
        pytest.param(body_of({**sms_event("r", "t"), "id": ""}), id="empty-id"),
        pytest.param(body_of({**sms_event("r", "t"), "occurredAt": "yesterday"}), id="bad-time"),
        pytest.param(body_of({**sms_event("r", "t"), "data": {"reservationId": "r"}}), id="sms-data-missing-fields"),
        pytest.param(
            body_of(
                event("v2.reservation.created", {"id": "r", "type": "verification"})
                | {"data": {"id": "r", "type": "boat"}}
            ),
            id="bad-enum",
        ),
    ],
)
def test_a_body_that_is_not_the_documents_shape_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEvent) as refused:
        parse_event(body)
    assert (refused.value.status_code, refused.value.code) == (400, "malformed_event")
