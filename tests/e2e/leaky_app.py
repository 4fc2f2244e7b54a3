"""The real app plus one route that tries hard to leak secrets into the logs (for the redaction test)."""

from __future__ import annotations

from litestar import Litestar, Request, post

from namaskah.app import create_app as create_real_app
from namaskah.lib.logging import get_logger

logger = get_logger("tests.leaky")


@post("/test/leak")
async def leak(request: Request[object, object, object]) -> None:
    body = await request.json()
    logger.info("login_attempt", email=body["email"], password=body["password"], headers=dict(request.headers))
    logger.info("key_used", api_key=request.headers.get("x-api-key"), refresh_token=body["refresh_token"])
    logger.info(f"raw message quoting {request.headers.get('authorization')}")
    # Free text can only be scrubbed of secret-shaped values (bearer tokens, our key prefixes, URL passwords).
    raise RuntimeError(
        f"upstream said no to Bearer {body['refresh_token']} with key {request.headers.get('x-api-key')}"
    )


def create_app() -> Litestar:
    app = create_real_app()
    app.register(leak)
    return app
