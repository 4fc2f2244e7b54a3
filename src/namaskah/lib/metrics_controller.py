"""`GET /metrics`: Prometheus text format, merged over worker processes."""

from __future__ import annotations

from litestar import Response, get

from namaskah.lib.metrics import render_latest


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics() -> Response[bytes]:
    body, content_type = render_latest()
    return Response(body, media_type=content_type)
