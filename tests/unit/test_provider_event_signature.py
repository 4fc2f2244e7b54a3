"""The TextVerified webhook signature: exactly the document's steps, and every way a forgery can look refused."""

from __future__ import annotations

import base64

import pytest

from namaskah.domain.provider_events.errors import BadSignature
from namaskah.domain.provider_events.signature import sign, verify
from tests.support.textverified_pushes import SECRET, signature

BODY = b'{"attempt":1,"event":"v2.sms.received","id":"evt_1"}'


def test_signing_follows_the_documents_steps() -> None:
    assert sign(BODY, SECRET) == signature(BODY, SECRET)
    assert sign(BODY, SECRET).startswith("HMAC-SHA512=")
    assert len(base64.b64decode(sign(BODY, SECRET).removeprefix("HMAC-SHA512="))) == 64


def test_a_correct_signature_passes_with_surrounding_whitespace_too() -> None:
    verify(BODY, signature(BODY), SECRET)
    verify(BODY, f"  {signature(BODY)} ", SECRET)


def _flipped(header: str) -> str:
    raw = bytearray(base64.b64decode(header.removeprefix("HMAC-SHA512=")))
    raw[0] ^= 1
    return "HMAC-SHA512=" + base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("body", "header"),
    [
        pytest.param(BODY, None, id="missing"),
        pytest.param(BODY, "", id="empty"),
        pytest.param(BODY, "HMAC-SHA512=", id="prefix-only"),
        pytest.param(BODY, signature(BODY).removeprefix("HMAC-SHA512="), id="no-prefix"),
        pytest.param(BODY, signature(BODY).replace("HMAC-SHA512=", "HMAC-SHA256="), id="other-algorithm"),
        pytest.param(BODY, signature(BODY).replace("HMAC-SHA512=", "hmac-sha512="), id="lowercase-prefix"),
        pytest.param(BODY, signature(BODY).replace("HMAC-SHA512=", "sha512="), id="wrong-prefix"),
        pytest.param(BODY, signature(BODY) + "!", id="not-base64"),
        pytest.param(BODY, signature(BODY)[:-8], id="truncated"),
        pytest.param(BODY, _flipped(signature(BODY)), id="one-bit-off"),
        pytest.param(BODY, signature(BODY, "whsec_another"), id="other-secret"),
        pytest.param(BODY + b" ", signature(BODY), id="body-changed-after-signing"),
        pytest.param(BODY.replace(b"evt_1", b"evt_2"), signature(BODY), id="body-edited"),
        pytest.param(BODY, "HMAC-SHA512=" + base64.b64encode(b"\0" * 64).decode(), id="zeros"),
    ],
)
def test_every_forgery_is_a_bad_signature(body: bytes, header: str | None) -> None:
    with pytest.raises(BadSignature) as refused:
        verify(body, header, SECRET)
    assert refused.value.code == "bad_signature"
    assert refused.value.status_code == 401


def test_the_secret_is_the_whole_string_prefix_included() -> None:
    without_prefix = signature(BODY, SECRET.removeprefix("whsec_"))
    with pytest.raises(BadSignature):
        verify(BODY, without_prefix, SECRET)


def test_verifying_without_a_secret_is_a_bug_not_an_answer() -> None:
    # Anyone can compute an HMAC under an empty key: the route refuses before verifying (see the integration tests).
    with pytest.raises(ValueError, match="needs a secret"):
        verify(BODY, signature(BODY, ""), "")
