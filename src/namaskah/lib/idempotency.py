"""The `Idempotency-Key` request header every retry-safe purchase route takes: printable ASCII, 1-64 chars."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

IdempotencyKey = Annotated[
    str | None, HeaderParameter(name="Idempotency-Key", min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
]
