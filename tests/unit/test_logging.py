"""The redaction processor: secrets by key name anywhere in an event, and secret-shaped text in any string."""

from __future__ import annotations

import io
import json
import logging

import pytest

from namaskah.lib.logging import REDACTED, bind_context, configure_logging, redact_secrets, reset_context


def redact(**event: object) -> dict:
    return redact_secrets(None, "info", dict(event))


@pytest.mark.parametrize(
    "key", ["password", "new_password", "Authorization", "x-api-key", "api_key", "refresh_token", "totp_secret"]
)
def test_secret_keys_are_redacted(key: str) -> None:
    assert redact(**{key: "value-123456"})[key] == REDACTED


def test_nested_headers_are_redacted_and_the_rest_kept() -> None:
    event = redact(headers={"authorization": "Bearer abc.def.ghi", "user-agent": "app/1.0"}, user="ada")
    assert event["headers"] == {"authorization": REDACTED, "user-agent": "app/1.0"}
    assert event["user"] == "ada"


@pytest.mark.parametrize(
    "text",
    [
        "calling with Bearer abcdefghijklmnop",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abcdefghijk was rejected",
        "key nsk_live_abcdef123456 revoked",
        "paystack sk_live_0123456789abcdef failed",
        "webhook whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "connect postgresql://admin:hunter2@db:5432/app failed",
        "refresh rt_abc-DEF_ghi-jklmnopqrs was spent",
    ],
)
def test_secret_shaped_text_is_redacted(text: str) -> None:
    scrubbed = redact(event=text)["event"]
    assert REDACTED in scrubbed
    for fragment in (
        "abcdefghijklmnop",
        "abcdefghijk",
        "nsk_live_abcdef",
        "sk_live_0123",
        "whsec_MfK",
        "hunter2",
        "jklmnopqrs",
    ):
        assert fragment not in scrubbed


def test_ordinary_text_is_untouched() -> None:
    assert redact(event="ping recorded for 10 users")["event"] == "ping recorded for 10 users"


def test_library_logs_go_through_the_same_json_pipeline() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    token = bind_context(request_id="req-1234567890")
    try:
        logging.getLogger("uvicorn.error").info("Authorization: Bearer abcdefghijklmnopqrstuvwxyz")
    finally:
        reset_context(token)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["logger"] == "uvicorn.error"
    assert line["request_id"] == "req-1234567890"
    assert "abcdefghijklmnop" not in line["event"]
