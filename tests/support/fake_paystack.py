"""A fake Paystack API as an httpx transport: every request our client sends and every answer the fake gives is held
to Paystack's OpenAPI document (openapi-core); plus Paystack's signed webhook events, which the document lacks."""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import msgspec
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse

from namaskah.domain.billing.events import SIGNATURE_HEADER, sign
from namaskah.domain.billing.models import SandboxTransaction
from namaskah.domain.billing.paystack import PaystackClient
from namaskah.domain.billing.sandbox_api import list_item, verify_data
from namaskah.settings import Settings

# A verbatim copy of the shared vendor document, kept in the repository so any checkout runs these tests.
SPEC_PATH = Path(__file__).resolve().parent / "vendor-specs" / "paystack.openapi.yaml"
BASE_URL = "https://api.paystack.co"  # the document's server
SECRET_KEY = "sk_test_fake0a1b2c3d4e5f60718293a4b5"  # not the sandbox's key: this talks to "Paystack"


@cache
def vendor_document() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=loader)


@cache
def vendor_api() -> OpenAPI:
    # Requests and answers are validated against the document's paths and schemas; the document itself is not.
    return OpenAPI.from_dict(vendor_document(), config=Config(spec_validator_cls=None))


@dataclass
class Fault:
    """Answer the next matching request(s) with this instead; `process` lets the fake act first (a lost answer)."""

    method: str
    path: str
    status: int = 503
    times: int = 1
    process: bool = False
    error: type[httpx.TransportError] | None = None  # raised instead of any answer
    headers: dict[str, str] = field(default_factory=dict)


class FakePaystack(httpx.AsyncBaseTransport):
    """Paystack's transactions in memory: initialize, verify, list, with the answers the document describes."""

    def __init__(self, secret_key: str = SECRET_KEY) -> None:
        self.secret_key = secret_key
        self.transactions: dict[str, SandboxTransaction] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []  # method, path, status (or -1 for a raised error)
        self.violations: list[str] = []
        self._ids = itertools.count(3_000_000_001)

    # --- scenario switches ----------------------------------------------------------------------------------

    def fail_next(self, method: str, path: str, status: int = 503, **options: Any) -> None:
        self.faults.append(Fault(method, path, status, **options))

    def pay(self, reference: str, *, amount: int | None = None, currency: str | None = None) -> SandboxTransaction:
        """The customer pays; `amount`/`currency` make Paystack report something else than was initialised."""
        tx = self.transactions[reference]
        tx.status, tx.paid_at = "success", datetime.now(UTC)
        tx.amount, tx.currency = amount or tx.amount, currency or tx.currency
        return tx

    def calls(self, method: str, path: str) -> list[int]:
        return [status for m, p, status in self.log if (m, p) == (method, path)]

    # --- the transport --------------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        self._checked(request, lambda: check_request(request, content))
        fault = self._take_fault(request)
        if fault is not None and fault.error is not None:
            if fault.process:
                self._answer(request, content)
            self.log.append((request.method, request.url.path, -1))
            raise fault.error("injected", request=request)
        if fault is not None and not fault.process:
            status, body = fault.status, {"status": False, "message": "Injected fault"}
        else:
            status, body = self._answer(request, content)
            if fault is not None:  # processed, then a 5xx in place of the answer
                status, body = fault.status, {"status": False, "message": "Injected fault"}
        self.log.append((request.method, request.url.path, status))
        headers = {"Content-Type": "application/json", **(fault.headers if fault else {})}
        response = httpx.Response(status, content=json.dumps(body).encode(), headers=headers, request=request)
        if status < 500 and status != 429:
            self._checked(request, lambda: check_response(request, content, response))
        return response

    def _take_fault(self, request: httpx.Request) -> Fault | None:
        for fault in self.faults:
            if (fault.method, fault.path) == (request.method, request.url.path) and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def _checked(self, request: httpx.Request, check: Callable[[], None]) -> None:
        try:
            check()
        except AssertionError as exc:
            self.violations.append(f"{request.method} {request.url.path}: {exc}")
            raise

    def _answer(self, request: httpx.Request, content: bytes) -> tuple[int, dict[str, Any]]:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return 401, {"status": False, "message": "Invalid key"}
        path = request.url.path
        if request.method == "POST" and path == "/transaction/initialize":
            return self._initialize(json.loads(content))
        if request.method == "GET" and (match := re.fullmatch(r"/transaction/verify/([^/]+)", path)):
            tx = self.transactions.get(match[1])
            if tx is None:
                return 404, {"status": False, "message": "Transaction reference not found"}
            return 200, {"status": True, "message": "Verification successful", "data": verify_data(tx)}
        if request.method == "GET" and path == "/transaction":
            return self._list(request.url.params)
        return 404, {"status": False, "message": "Not served by the fake"}

    def _initialize(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        reference = body.get("reference") or secrets.token_hex(6)
        if reference in self.transactions:
            return 400, {
                "status": False,
                "message": "Duplicate Transaction Reference",
                "code": "duplicate_reference",
                "type": "validation_error",
                "meta": {"nextStep": "Try and create the Transaction or Charge with a new reference"},
            }
        access_code = secrets.token_hex(8)
        self.transactions[reference] = SandboxTransaction(
            paystack_id=next(self._ids),
            reference=reference,
            access_code=access_code,
            amount=body["amount"],
            currency=body.get("currency", "NGN"),
            email=body["email"],
            metadata_=body.get("metadata"),
            status="abandoned",
            created_at=datetime.now(UTC),
            paid_at=None,
        )
        data = {"authorization_url": f"https://checkout.paystack.com/{access_code}", "access_code": access_code}
        return 200, {"status": True, "message": "Authorization URL created", "data": data | {"reference": reference}}

    def _list(self, params: httpx.QueryParams) -> tuple[int, dict[str, Any]]:
        page, per_page = int(params.get("page", "1")), int(params.get("per_page", "50"))
        rows = [tx for tx in self.transactions.values() if params.get("status") in (None, tx.status)]
        chosen = rows[(page - 1) * per_page : page * per_page]
        meta = {
            "total": len(rows),
            "total_volume": sum(tx.amount for tx in rows if tx.status == "success"),
            "skipped": (page - 1) * per_page,
            "perPage": per_page,
            "page": page,
            "pageCount": max(1, -(-len(rows) // per_page)),
        }
        items = [list_item(tx) for tx in chosen]
        return 200, {"status": True, "message": "Transactions retrieved", "data": items, "meta": meta}


# --- the document's checks --------------------------------------------------------------------------------


def _mock_request(request: httpx.Request, content: bytes) -> MockRequest:
    url = request.url
    return MockRequest(
        BASE_URL,
        request.method.lower(),
        url.path,
        args=list(url.params.multi_items()),
        headers=dict(request.headers),
        data=content or None,
        content_type=request.headers.get("content-type", "application/json"),
    )


def _explained(validate: Callable[..., None], *args: Any) -> None:
    try:
        validate(*args)
    except OpenAPIError as exc:
        raise AssertionError(f"{exc}: {exc.__cause__ or ''}") from exc


def check_request(request: httpx.Request, content: bytes) -> None:
    """Path, method, parameters and body as the document defines them, with the bearer secret key it asks for."""
    assert (request.url.scheme, request.url.host) == ("https", "api.paystack.co"), request.url
    assert re.fullmatch(r"Bearer sk_\S+", request.headers.get("Authorization", "")), "secret key missing"
    _explained(vendor_api().validate_request, _mock_request(request, content))
    if content:
        # openapi-core casts "5" to 5 before validating a body; the document's integers must be JSON integers.
        body = json.loads(content)
        assert all(type(body[name]) is int for name in ("amount",) if name in body), f"not an integer: {body}"


def check_response(request: httpx.Request, content: bytes, response: httpx.Response) -> None:
    answer = MockResponse(response.content, response.status_code, dict(response.headers), "application/json")
    _explained(vendor_api().validate_response, _mock_request(request, content), answer)


def client_for(fake: FakePaystack, sleeps: list[float] | None = None, **settings: Any) -> PaystackClient:
    """Our client built from settings as in production, its HTTP going to the fake; nothing really sleeps."""

    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    config = Settings(paystack_secret_key=fake.secret_key, **settings)
    return PaystackClient.from_settings(config, transport=fake, sleep=sleep)


# --- webhooks (not in the document: the vendor README describes them) --------------------------------------


def signed(event: dict[str, Any], secret_key: str = SECRET_KEY) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers Paystack sends for `event`."""
    body = msgspec.json.encode(event)
    return body, {SIGNATURE_HEADER: sign(body, secret_key), "Content-Type": "application/json"}


def charge_success(tx: SandboxTransaction) -> dict[str, Any]:
    return {"event": "charge.success", "data": verify_data(tx)}


def refund_processed(reference: str, amount: int, *, refund_id: int = 9_001, as_string: bool = True) -> dict[str, Any]:
    """refund.processed as Paystack sends it: the amount is a string there."""
    return {
        "event": "refund.processed",
        "data": {
            "status": "processed",
            "transaction_reference": reference,
            "refund_reference": f"rf_{refund_id}",
            "amount": str(amount) if as_string else amount,
            "currency": "NGN",
            "processor": "mastercard",
            "customer": {"first_name": None, "last_name": None, "email": "ada@example.com"},
            "integration": 412829,
            "domain": "test",
            "id": str(refund_id),
        },
    }


def dispute(kind: str, tx: SandboxTransaction, *, dispute_id: int = 7_001, **extra: Any) -> dict[str, Any]:
    """charge.dispute.create / charge.dispute.resolve for the transaction `tx`."""
    data = {
        "id": dispute_id,
        "refund_amount": tx.amount,
        "currency": tx.currency,
        "status": "awaiting-merchant-feedback",
        "resolution": None,
        "domain": "test",
        "transaction": {"id": tx.paystack_id, "reference": tx.reference, "amount": tx.amount, "currency": tx.currency},
        "category": "chargeback",
    }
    return {"event": kind, "data": data | extra}
