"""Holds the adapter and the fake TextVerified to the vendor's OpenAPI document, and serves them to tests."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse

from namaskah.providers.textverified import TextVerifiedProvider
from namaskah.settings import Settings
from tests.support.fake_textverified import (
    API,
    API_KEY,
    USERNAME,
    Clock,
    FakeTextVerified,
    vendor_api,
    vendor_document,
)


class ContractTransport(httpx.AsyncBaseTransport):
    """Serves the fake over ASGI and checks every request the adapter sends and every answer the fake gives
    against the vendor document; a violation fails the test where it happens and is kept for teardown."""

    def __init__(self, fake: FakeTextVerified) -> None:
        self.fake = fake
        self.sent: list[httpx.Request] = []
        self.violations: list[str] = []
        self._app = httpx.ASGITransport(app=fake)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        operation = self._check(request, check_request)
        fault = self.fake.take_fault(request.method, request.url.path, transport=True)
        if fault is not None and fault.error is not None:
            if fault.process:  # the provider acted, the answer was lost on the way back
                self.fake.skip_faults = True
                try:
                    await (await self._app.handle_async_request(request)).aread()
                finally:
                    self.fake.skip_faults = False
            raise fault.error("injected", request=request)
        off_contract = any(
            f.off_contract and (f.method, f.path) == (request.method, request.url.path) for f in self.fake.faults
        )
        response = await self._app.handle_async_request(request)
        content = await response.aread()
        if not off_contract:
            self._check(
                request, lambda r: check_response(r, response.status_code, response.headers, content, operation)
            )
        return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

    def _check(self, request: httpx.Request, check: Callable[[httpx.Request], Any]) -> Any:
        try:
            return check(request)
        except Exception as exc:
            self.violations.append(f"{request.method} {request.url.path}: {exc}")
            raise AssertionError(f"contract violation: {request.method} {request.url.path}: {exc}") from exc


def _operation(method: str, path: str) -> dict[str, Any]:
    for template, item in vendor_document()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path) and method.lower() in item:
            return item[method.lower()]
    raise AssertionError(f"{method} {path} is not in the document")


def _mock_request(request: httpx.Request) -> MockRequest:
    url = request.url
    return MockRequest(
        f"{url.scheme}://{url.host}",
        request.method.lower(),
        url.path,
        args=list(url.params.multi_items()),
        headers=dict(request.headers),
        data=request.content,
        content_type=request.headers.get("content-type", ""),
    )


def _explained(validate: Callable[..., None], *args: Any) -> None:
    """openapi-core's errors say little in their message; the reason is in their cause."""
    try:
        validate(*args)
    except OpenAPIError as exc:
        raise AssertionError(f"{exc}: {exc.__cause__ or ''}") from exc


def check_request(request: httpx.Request) -> dict[str, Any]:
    """Path, method, parameters and body as the document defines them, plus the credentials it asks for."""
    operation = _operation(request.method, request.url.path)
    _explained(vendor_api().validate_request, _mock_request(request))
    if request.url.path == f"{API}/auth":
        assert request.headers.get("X-API-USERNAME"), "auth without X-API-USERNAME"
        assert request.headers.get("X-API-KEY"), "auth without X-API-KEY"
        assert "Authorization" not in request.headers
    else:
        assert operation.get("security"), "undocumented unsecured operation"
        assert re.fullmatch(r"Bearer \S+", request.headers.get("Authorization", "")), "bearer token missing"
        assert "X-API-KEY" not in request.headers, "the API key is sent only to /auth"
    declared = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
    if "idempotency-key" in request.headers:
        assert "idempotency-key" in declared, "Idempotency-Key sent where the document does not take it"
    return operation


def check_response(
    request: httpx.Request, status: int, headers: httpx.Headers, content: bytes, operation: dict[str, Any]
) -> None:
    """Status and body as the document defines them; 429 and 5xx only as its prose allows (no schema)."""
    if str(status) not in operation["responses"]:
        assert status == 429 or status >= 500, f"status {status} is not in the document"
        return
    answer = MockResponse(content, status, dict(headers), headers.get("content-type", ""))
    _explained(vendor_api().validate_response, _mock_request(request), answer)
    if status == 201:
        assert headers.get("Location"), "a 201 without Location"


# --- the adapter, served by the fake ----------------------------------------------------------------------


@dataclass
class Harness:
    provider: TextVerifiedProvider
    fake: FakeTextVerified
    transport: ContractTransport
    clock: Clock
    sleeps: list[float]  # every wait the adapter asked for; nothing really sleeps


@asynccontextmanager
async def serve(rng: random.Random | None = None, **settings: Any) -> AsyncIterator[Harness]:
    """The adapter built from settings as in production, its HTTP going to the fake through the contract check."""
    clock = Clock()
    fake = FakeTextVerified(clock)
    transport = ContractTransport(fake)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    config = Settings(textverified_username=USERNAME, textverified_api_key=API_KEY, **settings)
    options = {"sleep": sleep, "clock": clock, "rng": rng or random.Random(1)}
    provider = TextVerifiedProvider.from_settings(config, transport=transport, **options)
    try:
        yield Harness(provider, fake, transport, clock, sleeps)
    finally:
        await provider.aclose()
    assert not transport.violations, transport.violations
