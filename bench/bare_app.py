"""The baseline for health_live.py: a bare Litestar app serving GET /health/live, no middleware or logging."""

from __future__ import annotations

from litestar import Litestar, get


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[live], logging_config=None)
