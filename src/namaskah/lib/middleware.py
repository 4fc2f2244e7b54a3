"""The outermost ASGI layer: request id, bound log context, one access log line and metrics per request."""

from __future__ import annotations

import random
import re
import time
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType

from namaskah.lib.logging import SCOPE_KEY, access_log, bind_context, reset_context
from namaskah.lib.metrics import UNMATCHED_ROUTE, observe_request

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
# Scope-state key where inner layers leave headers for every answer (e.g. RateLimit-*), errors included.
RESPONSE_HEADERS_KEY = "namaskah.response_headers"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{8,128}$")


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address (uvicorn puts a trusted proxy's X-Forwarded-For there)."""
    return connection.client.host if connection.client else "unknown"


def incoming_request_id(scope: HTTPScope) -> str:
    """Keep a well-formed X-Request-ID from the caller (a proxy or client correlating), else make one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _VALID_REQUEST_ID.match(value):
                return value.decode("ascii")
            break
    # A correlation id, not a secret: the PRNG is enough and avoids a getrandom syscall per request.
    return f"{random.getrandbits(128):032x}"


class RequestContextMiddleware:
    """Wraps the whole application so that 404s and crashes are logged and counted like any request.

    Paths in `quiet_paths` (probes, scrapes) are counted but only logged when they fail."""

    def __init__(self, app: ASGIApp, *, quiet_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        await self._handle_http(scope, receive, send)

    async def _handle_http(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        request_id = incoming_request_id(scope)
        method, path = scope["method"], scope["path"]
        token = bind_context(request_id=request_id, method=method, path=path, **{SCOPE_KEY: scope})
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), header]
                if extra := scope["state"].get(RESPONSE_HEADERS_KEY):
                    headers.extend((name.lower().encode(), value.encode()) for name, value in extra.items())
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or UNMATCHED_ROUTE
            observe_request(method, route, status, elapsed)
            if status >= 400 or path not in self.quiet_paths:
                access_log().request(route=route, status=status, duration_ms=round(elapsed * 1000, 2))
            reset_context(token)
