"""Retry-safe purchases: the `Idempotency-Key` request header (printable ASCII, 1-64 chars), the fingerprint of a
request's body that tells a retry (same body) from a reuse of the key (another body), and the 422 for a reuse."""

from __future__ import annotations

import hashlib
from typing import Annotated

import msgspec
from litestar.params import HeaderParameter

from namaskah.lib.errors import DomainError

IdempotencyKey = Annotated[
    str | None, HeaderParameter(name="Idempotency-Key", min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
]


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


def fingerprint(*fields: object) -> str:
    """A hash of the decoded fields, in a fixed order: stable over key order and whitespace of the JSON the client
    sent, and over fields it left at their defaults. Stored fingerprints depend on it: do not change the encoding."""
    return hashlib.sha256(msgspec.json.encode(list(fields))).hexdigest()


def check_same_request(stored: str | None, requested: str) -> None:
    """A key seen before answers its first request only if this one is the same request."""
    if stored != requested:
        raise IdempotencyKeyReused("This Idempotency-Key was used for a different request")
