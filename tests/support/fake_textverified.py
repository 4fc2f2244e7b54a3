"""A fake TextVerified API v2 (plain ASGI) and a transport that holds both sides to the vendor's OpenAPI document."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import msgspec
from openapi_core import Config, OpenAPI

# A verbatim copy of the shared vendor document, kept in the repository so any checkout can run the contract tests.
SPEC_PATH = Path(__file__).resolve().parent / "vendor-specs" / "textverified-api-v2.openapi.json"
BASE_URL = "https://www.textverified.com"  # the document's server
USERNAME = "ops@namaskah.example"
API_KEY = "TvKey9f3Qz7LmN2pX8wR4tY6uV1s"  # not secret-shaped on purpose: log redaction could not hide it
API = "/api/pub/v2"
_encoder = msgspec.json.Encoder(decimal_format="number")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (None: empty), headers


@cache
def vendor_document() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@cache
def vendor_api() -> OpenAPI:
    # The document itself breaks OpenAPI 3.0 in places (`example` beside `examples`), so it is not validated as a
    # document; requests and answers are still validated against its paths and schemas.
    return OpenAPI.from_dict(vendor_document(), config=Config(spec_validator_cls=None))


class Clock:
    """A monotonic clock the test moves by hand; the fake and the adapter read the same one."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Fault:
    """Answer the next matching request(s) with this instead; `process` lets the fake act first (a lost answer)."""

    method: str
    path: str
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    process: bool = False
    error: type[httpx.TransportError] | None = None  # raised by the transport instead of any answer
    off_contract: bool = False  # an answer the document does not allow, sent on purpose


class FakeTextVerified:
    """Keeps verifications, sales, rentals and SMS in memory and answers as the document says."""

    def __init__(self, clock: Clock, *, token_ttl: float = 900.0) -> None:
        self.clock = clock
        self.token_ttl = token_ttl
        self.api_key = API_KEY
        self.tokens: dict[str, float] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []  # method, path, status
        self.verifications: dict[str, dict[str, Any]] = {}
        self.rentals: dict[str, dict[str, Any]] = {}
        self.sales: dict[str, dict[str, Any]] = {}
        self.sms: dict[str, list[dict[str, Any]]] = {}
        self.idempotent: dict[tuple[str, str], str] = {}
        self.extensions = 0
        self.sale_polls_before_done = 0
        self.sms_page_size = 2
        self.reject_all_tokens = False
        self.skip_faults = False
        self.decoy_body_links = False
        self.location_base = BASE_URL
        self._ids = itertools.count(1)

    # --- scenario switches ----------------------------------------------------------------------------------

    def fail_next(self, method: str, path: str, status: int = 503, **options: Any) -> None:
        self.faults.append(Fault(method, path, status, **options))

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def deliver_sms(self, reservation_id: str, text: str, code: str | None = None) -> None:
        number = (self.verifications.get(reservation_id) or self.rentals[reservation_id])["number"]
        at = _iso(datetime.now(UTC) + timedelta(seconds=len(self.sms.get(reservation_id, []))))
        sms_id = f"sms_{next(self._ids)}"
        message = {"id": sms_id, "from": "22000", "to": number, "createdAt": at, "smsContent": text}
        self.sms.setdefault(reservation_id, []).append(message | {"parsedCode": code, "encrypted": False})
        if reservation_id in self.verifications:
            self.verifications[reservation_id]["state"] = "verificationCompleted"

    def calls(self, method: str, path: str) -> list[int]:
        """Statuses answered to `method path`, in order."""
        return [status for m, p, status in self.log if (m, p) == (method, path)]

    def take_fault(self, method: str, path: str, *, transport: bool = False) -> Fault | None:
        """The next fault for `method path`: one the transport raises, or one the fake answers."""
        for fault in self.faults:
            if (fault.method, fault.path) == (method, path) and (fault.error is not None) == transport:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    # --- ASGI -----------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        await asyncio.sleep(0)  # as over a network, other calls run while this one waits
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        status, payload, extra = self.answer(method, path, query, headers, body)
        self.log.append((method, path, status))
        content = b"" if payload is None else _encoder.encode(payload)
        out = [(b"content-type", b"application/json")] if content else []
        out += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": content})

    def answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Answer:
        fault = None if self.skip_faults else self.take_fault(method, path)
        if fault and not fault.process:
            return fault.status, fault.body, fault.headers
        if path == f"{API}/auth":
            result = self.auth(method, headers)
        elif not self.authorized(headers):
            result = (401, None, {})
        else:
            result = self.route(method, path, query, json.loads(body) if body else None, headers)
        return (fault.status, fault.body, fault.headers) if fault else result

    def auth(self, method: str, headers: dict[str, str]) -> Answer:
        assert method == "POST"
        if headers.get("x-api-username") != USERNAME or headers.get("x-api-key") != self.api_key:
            return 401, None, {}
        token = f"fake-token-{next(self._ids)}-z"
        self.tokens[token] = self.clock() + self.token_ttl
        expires_at = datetime.now(UTC) + timedelta(seconds=self.token_ttl)
        return 200, {"token": token, "expiresIn": self.token_ttl, "expiresAt": _iso(expires_at)}, {}

    def authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expires = self.tokens.get(token)
        return scheme == "Bearer" and not self.reject_all_tokens and expires is not None and self.clock() < expires

    def route(self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Answer:
        for route_method, pattern, handler in _ROUTES:
            if method == route_method and (match := re.fullmatch(pattern, path)):
                return handler(self, *match.groups(), query=query, body=body, headers=headers)
        return 404, None, {}

    # --- verifications --------------------------------------------------------------------------------------

    def create_verification(self, body: Any, headers: dict[str, str], **_: Any) -> Answer:
        if refused := _mock_error(body["serviceName"], self.verification_cost(body), body.get("maxPrice")):
            return refused
        key = ("verification", headers["idempotency-key"].strip())
        if key not in self.idempotent:
            ver_id = f"ver_{next(self._ids)}"
            now = datetime.now(UTC)
            self.verifications[ver_id] = {
                "id": ver_id,
                "number": f"+1555{len(self.verifications):07d}",
                "serviceName": body["serviceName"],
                "state": "verificationPending",
                "createdAt": _iso(now),
                "endsAt": _iso(now + timedelta(minutes=15)),
                "totalCost": self.verification_cost(body),
            }
            self.idempotent[key] = f"{self.location_base}{API}/verifications/{ver_id}"
        return self.created(self.idempotent[key])

    def created(self, location: str) -> Answer:
        # With `decoy_body_links` the body's link leads nowhere: only a client that follows Location succeeds.
        href = f"{location}_decoy" if self.decoy_body_links else location
        return 201, {"method": "GET", "href": href}, {"Location": location}

    def verification_cost(self, body: Any) -> Decimal:
        return Decimal("1.25") if body["serviceName"] == "whatsapp" else Decimal("0.75")

    def get_verification(self, ver_id: str, **_: Any) -> Answer:
        if ver_id not in self.verifications:
            return 404, None, {}
        found = self.verifications[ver_id]
        link = _link(f"{API}/verifications/{ver_id}")
        action = _link(f"{API}/verifications/{ver_id}/cancel", "POST")
        answer = found | {
            "sms": _link(f"{API}/sms?reservationId={ver_id}"),
            "calls": _link(f"{API}/calls?reservationId={ver_id}"),
            "cancel": {"canCancel": found["state"] == "verificationPending", "link": action},
            "reactivate": {"canReactivate": False, "link": link},
            "report": {"canReport": True, "link": link},
            "reuse": {"link": link, "reusableUntil": None},
            "sale": _link(f"{API}/sales/sale_{ver_id}"),
        }
        return 200, answer, {}

    def cancel_verification(self, ver_id: str, **_: Any) -> Answer:
        return self._transition(ver_id, {"verificationPending"}, "verificationCanceled")

    def report_verification(self, ver_id: str, **_: Any) -> Answer:
        return self._transition(ver_id, {"verificationPending", "verificationCompleted"}, "verificationReported")

    def _transition(self, ver_id: str, allowed: set[str], to: str) -> Answer:
        found = self.verifications.get(ver_id)
        if found is None or found["state"] not in allowed:
            return 400, None, {}  # the document: 400 when the verification does not allow it
        found["state"] = to
        return 200, None, {}

    def list_sms(self, query: dict[str, str], **_: Any) -> Answer:
        found = self.sms.get(query.get("reservationId", ""), [])
        start = int(query.get("page", "0")) * self.sms_page_size
        page = found[start : start + self.sms_page_size]
        has_next = start + self.sms_page_size < len(found)
        following = {k: v for k, v in query.items() if k != "page"} | {"page": str(start // self.sms_page_size + 1)}
        links = {
            "current": _link(f"{API}/sms?{urlencode(query)}"),
            "previous": {"href": None, "method": None},
            "next": _link(f"{API}/sms?{urlencode(following)}") if has_next else {"href": None, "method": None},
        }
        answer = {"data": page, "hasNext": has_next, "hasPrevious": start > 0, "count": len(found), "links": links}
        return 200, answer, {}

    # --- rentals --------------------------------------------------------------------------------------------

    def create_rental(self, body: Any, headers: dict[str, str], **_: Any) -> Answer:
        if refused := _mock_error(body["serviceName"], Decimal(0), None):
            return refused
        key = ("rental", headers["idempotency-key"].strip())
        if key not in self.idempotent:
            rental_id, sale_id = f"ren_{next(self._ids)}", f"sale_{next(self._ids)}"
            now = datetime.now(UTC)
            days = _DAYS[body["duration"]]
            self.rentals[rental_id] = {
                "id": rental_id,
                "number": f"+1555{len(self.rentals):07d}",
                "serviceName": body["serviceName"],
                "state": "nonrenewableActive",
                "createdAt": _iso(now),
                "endsAt": _iso(now + timedelta(days=days)),
                "saleId": sale_id,
                "alwaysOn": False,
            }
            self.sales[sale_id] = {"id": sale_id, "rental": rental_id, "total": Decimal("2.50") * days}
            self.sales[sale_id]["polls_left"] = self.sale_polls_before_done
            self.idempotent[key] = f"{API}/sales/{sale_id}"  # relative, to exercise resolving it
        return self.created(self.idempotent[key])

    def get_sale(self, sale_id: str, **_: Any) -> Answer:
        sale = self.sales.get(sale_id)
        if sale is None:
            return 404, None, {}
        done = sale["polls_left"] <= 0
        sale["polls_left"] -= 1
        rental = self.rentals[sale["rental"]]
        reservation = {
            "id": rental["id"],
            "link": _link(f"{self.location_base}{API}/reservations/rental/nonrenewable/{rental['id']}"),
            "reservationType": "nonrenewable",
            "serviceName": rental["serviceName"],
        }
        now = _iso(datetime.now(UTC))
        answer = {
            "id": sale_id,
            "createdAt": now,
            "updatedAt": now,
            "backOrderReservations": [],
            "reservations": [reservation] if done else [],
            "state": "succeeded" if done else "processing",
            "total": sale["total"],
        }
        return 200, answer, {}

    def get_rental(self, rental_id: str, **_: Any) -> Answer:
        if rental_id not in self.rentals:
            return 404, None, {}
        found = self.rentals[rental_id]
        refund = _link(f"{API}/reservations/rental/nonrenewable/{rental_id}/refund", "POST")
        answer = found | {
            "sms": _link(f"{API}/sms?reservationId={rental_id}"),
            "calls": _link(f"{API}/calls?reservationId={rental_id}"),
            "refund": {
                "canRefund": found["state"] == "nonrenewableActive",
                "link": refund,
                "refundableUntil": None,
            },
            "sale": _link(f"{API}/sales/{found['saleId']}"),
        }
        return 200, answer, {}

    def extend_rental(self, body: Any, **_: Any) -> Answer:
        found = self.rentals.get(body["rentalId"])
        if found is None or found["state"] != "nonrenewableActive":
            return 400, None, {}
        self.extensions += 1
        days = _DAYS[body["extensionDuration"]]
        original = found["endsAt"]
        found["endsAt"] = _iso(datetime.fromisoformat(original) + timedelta(days=days))
        answer = {
            "id": f"ext_{next(self._ids)}",
            "reservationId": found["id"],
            "extensionAmount": f"{days}.00:00:00",
            "cost": Decimal("1.10") * days,
            "createdAt": _iso(datetime.now(UTC)),
            "originalEndsAt": original,
            "newEndsAt": found["endsAt"],
        }
        return 200, answer, {}

    def refund_rental(self, rental_id: str, **_: Any) -> Answer:
        found = self.rentals.get(rental_id)
        if found is None or found["state"] != "nonrenewableActive":
            return 400, None, {}
        found["state"] = "nonrenewableRefunded"
        return 200, None, {}

    # --- catalog --------------------------------------------------------------------------------------------

    def list_services(self, **_: Any) -> Answer:
        services = [("whatsapp", "sms"), ("telegram", "smsAndVoiceCombo"), ("bankline", "voice")]
        return 200, [{"serviceName": name, "capability": cap} for name, cap in services], {}

    def price_verification(self, body: Any, **_: Any) -> Answer:
        extra = Decimal("0.10") * (body["areaCode"] + body["carrier"])
        return 200, {"serviceName": body["serviceName"], "price": self.verification_cost(body) + extra}, {}

    def price_rental(self, body: Any, **_: Any) -> Answer:
        return 200, {"serviceName": body["serviceName"], "price": Decimal("2.50") * _DAYS[body["duration"]]}, {}


_ID = r"([^/]+)"
_ROUTES: list[tuple[str, str, Callable[..., Answer]]] = [
    ("GET", f"{API}/services", FakeTextVerified.list_services),
    ("POST", f"{API}/pricing/verifications", FakeTextVerified.price_verification),
    ("POST", f"{API}/pricing/rentals", FakeTextVerified.price_rental),
    ("POST", f"{API}/verifications", FakeTextVerified.create_verification),
    ("GET", f"{API}/verifications/{_ID}", FakeTextVerified.get_verification),
    ("POST", f"{API}/verifications/{_ID}/cancel", FakeTextVerified.cancel_verification),
    ("POST", f"{API}/verifications/{_ID}/report", FakeTextVerified.report_verification),
    ("GET", f"{API}/sms", FakeTextVerified.list_sms),
    ("POST", f"{API}/reservations/rental", FakeTextVerified.create_rental),
    ("GET", f"{API}/sales/{_ID}", FakeTextVerified.get_sale),
    ("GET", f"{API}/reservations/rental/nonrenewable/{_ID}", FakeTextVerified.get_rental),
    ("POST", f"{API}/reservations/rentals/extensions", FakeTextVerified.extend_rental),
    ("POST", f"{API}/reservations/rental/nonrenewable/{_ID}/refund", FakeTextVerified.refund_rental),
]
_DAYS = {"oneDay": 1, "threeDay": 3, "sevenDay": 7, "fourteenDay": 14, "thirtyDay": 30, "ninetyDay": 90, "oneYear": 365}
# The document's Mock Error Matrix: service names that make a create fail, and the error code they answer.
_MOCK_ERRORS = {
    "test_no_numbers": "Unavailable",
    "test_insufficient_balance": "InsufficientBalance",
    "test_too_many_unfinished_verifications": "TooManyUnfinishedVerifications",
}


def _mock_error(service: str, price: Decimal, max_price: Any) -> Answer | None:
    code = _MOCK_ERRORS.get(service)
    if code is None and max_price is not None and Decimal(str(max_price)) < price:
        code = "PricingFailure"
    return (400, {"errorCode": code, "errorDescription": f"mock {code}"}, {}) if code else None


def _link(href: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "method": method}


def _iso(moment: datetime) -> str:
    return moment.isoformat()
