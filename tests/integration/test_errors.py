"""Every error is RFC 9457 problem+json with a stable code; nothing internal leaks."""

from __future__ import annotations

import msgspec
import pytest
from httpx import AsyncClient
from litestar import Litestar, get, post
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.app import create_app
from tests.conftest import serve_in_loop
from tests.support.databases import make_settings

PROBLEM = "application/problem+json"


class Order(msgspec.Struct):
    service: str
    quantity: int


@post("/test/orders")
async def create_order(data: JSONBody[Order]) -> Order:
    return data


@get("/test/boom")
async def boom() -> None:
    raise RuntimeError("connection string postgres://admin:hunter2@db/prod exploded")


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.fixture
def app(app: Litestar) -> Litestar:
    app.register(create_order)
    app.register(boom)
    return app


async def test_malformed_json_is_400(client: AsyncClient) -> None:
    response = await client.post(
        "/test/orders", content=b'{"service": "wa', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


async def test_validation_names_each_field(client: AsyncClient) -> None:
    response = await client.post("/test/orders", json={"service": 3, "quantity": "many"})
    body = assert_problem(response, 422, "validation_failed")
    fields = {error["field"] for error in body["errors"]}
    assert "service" in fields or "quantity" in fields
    assert all(error["message"] for error in body["errors"])


async def test_missing_field_is_named(client: AsyncClient) -> None:
    response = await client.post("/test/orders", json={"service": "whatsapp"})
    body = assert_problem(response, 422, "validation_failed")
    assert "quantity" in body["detail"] or any("quantity" in e["message"] for e in body["errors"])


async def test_unknown_route_is_404(client: AsyncClient) -> None:
    assert_problem(await client.get("/v1/does-not-exist"), 404, "not_found")


async def test_wrong_method_is_405(client: AsyncClient) -> None:
    assert_problem(await client.delete("/health/live"), 405, "method_not_allowed")


async def test_unexpected_error_is_500_without_internals(client: AsyncClient) -> None:
    response = await client.get("/test/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"] in body["detail"]


async def test_database_unavailable_is_503(stub_broker) -> None:
    # A real connection attempt to a port nothing listens on.
    dead = make_settings(DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/namaskah", READY_TIMEOUT="1")
    app = create_app(dead, engine=create_async_engine(dead.effective_database_url), broker=stub_broker)
    async with serve_in_loop(app) as client:
        response = await client.get("/v1/dev/pings/abcdefgh12")
    body = assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"]
    assert "127.0.0.1" not in body["detail"]


async def test_domain_error_keeps_its_code(client: AsyncClient) -> None:
    assert_problem(await client.get("/v1/dev/pings/never-sent-1"), 404, "ping_not_found")


@get("/test/upstream-refused")
async def upstream_refused() -> None:
    raise ConnectionRefusedError("some partner API is down")


async def test_other_connection_failures_are_503_but_not_blamed_on_the_database(app: Litestar) -> None:
    app.register(upstream_refused)
    async with serve_in_loop(app) as client:
        response = await client.get("/test/upstream-refused")
    body = assert_problem(response, 503, "service_unavailable")
    assert "partner" not in body["detail"]
