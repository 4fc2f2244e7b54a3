"""Per-principal request limits on `/v1/*`: the caller's tier sets the limit, counted in Redis for all processes."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from namaskah.domain.accounts.caller import admit
from namaskah.lib.errors import DomainError
from namaskah.lib.middleware import RESPONSE_HEADERS_KEY


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"


async def enforce_rate_limit(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Count the request against its principal (API key, user of a valid access token), else the client IP."""
    decision = await admit(connection)
    # The outer middleware adds these to whatever answer goes out, the 429 included.
    connection.scope["state"][RESPONSE_HEADERS_KEY] = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            f"Limit of {decision.limit} requests per minute reached; retry in {decision.reset} s",
            headers={"Retry-After": str(decision.reset)},
        )
