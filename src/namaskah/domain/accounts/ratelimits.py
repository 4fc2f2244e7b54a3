"""Per-principal request limits on `/v1/*`: the caller's tier sets the limit, counted in Redis for all processes."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from namaskah.domain.accounts.caller import identify
from namaskah.lib.errors import DomainError
from namaskah.lib.middleware import RESPONSE_HEADERS_KEY, client_ip
from namaskah.lib.ratelimit import RateLimiter


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"


async def rate_limit_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Count the request against its principal: the user of a valid access token, else the client IP."""
    state = connection.app.state
    caller = await identify(connection)
    if caller is not None:
        key, limit = caller.rate_key, caller.limit
    else:
        # Anonymous, or a credential the route will refuse: counted against the client IP.
        key = f"ip:{client_ip(connection)}"
        limit = state.settings.rate_limit_anonymous
    limiter: RateLimiter = state.rate_limiter
    decision = await limiter.hit(key, limit)
    # The outer middleware adds these to whatever answer goes out, the 429 included.
    connection.scope["state"][RESPONSE_HEADERS_KEY] = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            f"Limit of {limit} requests per minute reached; retry in {decision.reset} s",
            headers={"Retry-After": str(decision.reset)},
        )
