"""TextVerified's webhook signature: `X-Webhook-Signature: HMAC-SHA512=<Base64 of HMAC-SHA512(secret, raw body)>`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from namaskah.domain.provider_events.errors import BadSignature

SIGNATURE_HEADER = "X-Webhook-Signature"
PREFIX = "HMAC-SHA512="


def _digest(body: bytes, secret: str) -> bytes:
    # The document signs with "your webhook secret (whsec_...)": the whole string is the key, prefix included.
    return hmac.new(secret.encode(), body, hashlib.sha512).digest()


def sign(body: bytes, secret: str) -> str:
    """The header value the vendor sends for `body` (tests and local tools sign with it)."""
    return PREFIX + base64.b64encode(_digest(body, secret)).decode("ascii")


def verify(body: bytes, header: str | None, secret: str) -> None:
    """Raise BadSignature unless `header` signs exactly these bytes with `secret`. The comparison is in constant
    time, of the decoded digests, so neither timing nor Base64 spelling tells a forger anything."""
    if not secret:
        raise ValueError("verifying a signature needs a secret")  # the caller refuses the route before this
    if header is None:
        raise BadSignature(f"The {SIGNATURE_HEADER} header is missing")
    value = header.strip()
    if not value.startswith(PREFIX):
        raise BadSignature(f"The {SIGNATURE_HEADER} header must start with {PREFIX}")
    try:
        presented = base64.b64decode(value.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature(f"The {SIGNATURE_HEADER} header is not Base64 after {PREFIX}") from None
    if not hmac.compare_digest(presented, _digest(body, secret)):
        raise BadSignature("The signature does not match the body")
