"""Prometheus metrics for HTTP requests, correct across several worker processes (multiprocess directory)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox messages sent to the broker.", ("path",))
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Outbox publish attempts that failed (broker unreachable).", ("path",)
)

UNMATCHED_ROUTE = "<unmatched>"


_request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    # Label lookups validate and lock on every call; the set of (method, route, status) is small, so cache it.
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        labels = (method, route, str(status))
        series = _request_series[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    series[0].inc()
    series[1].observe(seconds)


def render_latest() -> tuple[bytes, str]:
    """The exposition text: merged over every process when a multiprocess directory is configured."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
