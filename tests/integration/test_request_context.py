"""Request ids are kept or made and echoed; metrics are labelled by route template, never the raw path."""

from __future__ import annotations

import io
import json
import re

import pytest
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from namaskah.lib.logging import configure_logging


async def test_well_formed_request_id_is_kept(client: AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "mobile-7f3a9c21-0001"})
    assert response.headers["x-request-id"] == "mobile-7f3a9c21-0001"


@pytest.mark.parametrize("bad", ["short", "has spaces in it!", "x" * 200, "inject\u00e9-header-value"])
async def test_malformed_request_id_is_replaced(client: AsyncClient, bad: str) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": bad.encode("utf-8")})
    assert response.headers["x-request-id"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_request_id_is_generated_and_unique(client: AsyncClient) -> None:
    first = (await client.get("/health/live")).headers["x-request-id"]
    second = (await client.get("/health/live")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample, 0 when absent."""
    for family in text_string_to_metric_families(metrics_text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


async def test_metrics_use_route_templates(client: AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    for token in ("tmpl-token-01", "tmpl-token-02", "tmpl-token-03"):
        await client.get(f"/v1/dev/pings/{token}")
    await client.get("/no/such/route/12345")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    labels = {"method": "GET", "route": "/v1/dev/pings/{token}", "status": "404"}
    assert sample(text, "http_requests_total", **labels) - sample(before, "http_requests_total", **labels) == 3
    assert sample(text, "http_request_duration_seconds_count", **labels) >= 3
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert sample(text, "http_requests_total", **unmatched) >= 1
    assert "tmpl-token-01" not in text
    assert "/no/such/route" not in text


async def test_openapi_document_is_served(client: AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Namaskah SMS"
    assert {"/health/live", "/health/ready"} <= document["paths"].keys()
    assert "/metrics" not in document["paths"]


async def test_probes_are_logged_only_when_they_fail(client: AsyncClient, stub_broker) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    await client.get("/health/live")
    await client.get("/health/live", headers={"X-Request-ID": "probe-fails-0001"}, params={"x": "1"})
    await client.post("/health/live")  # 405: a failing probe is logged
    await client.get("/v1/dev/pings/quiet-check-01")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [(line["route"], line["status"]) for line in requests] == [
        ("<unmatched>", 405),
        ("/v1/dev/pings/{token}", 404),
    ]
    assert all(line["request_id"] and line["timestamp"].endswith("Z") for line in requests)
