"""TextVerified operations end to end against the fake, every exchange held to the vendor's OpenAPI document."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from namaskah.providers import ProviderState, ReservationKind, SmsProvider
from namaskah.providers.errors import ProviderRejected, ProviderUnavailable, ProviderUnsupportedOption
from tests.support.fake_textverified import API, BASE_URL, vendor_document
from tests.support.textverified_contract import Harness, check_request, check_response, serve

VERIFICATION, RENTAL = ReservationKind.VERIFICATION, ReservationKind.RENTAL


@pytest.fixture
async def tv() -> AsyncIterator[Harness]:
    async with serve() as harness:
        yield harness


def bodies(tv: Harness, path: str) -> list[dict[str, object]]:
    return [json.loads(r.content) for r in tv.transport.sent if r.url.path == path and r.content]


async def test_the_adapter_is_an_sms_provider(tv: Harness) -> None:
    provider: SmsProvider = tv.provider
    assert (provider.name, sorted(provider.rental_days)) == ("textverified", [1, 3, 7, 14, 30, 90, 365])


async def test_services_are_the_sms_capable_ones_for_the_kind(tv: Harness) -> None:
    services = await tv.provider.list_services(RENTAL)
    assert [(s.name, s.kind) for s in services] == [("whatsapp", RENTAL), ("telegram", RENTAL)]
    (request,) = [r for r in tv.transport.sent if r.url.path == f"{API}/services"]
    assert dict(request.url.params) == {"numberType": "mobile", "reservationType": "nonrenewable"}


async def test_prices_are_exact_decimals_in_usd(tv: Harness) -> None:
    price = await tv.provider.verification_price("telegram", area_code=True, carrier=True)
    assert (price.amount, price.currency) == (Decimal("0.95"), "USD")
    assert bodies(tv, f"{API}/pricing/verifications") == [
        {"serviceName": "telegram", "areaCode": True, "carrier": True, "numberType": "mobile", "capability": "sms"}
    ]
    rental = await tv.provider.rental_price("telegram", 30)
    assert rental.amount == Decimal("75.00")
    assert bodies(tv, f"{API}/pricing/rentals")[0]["duration"] == "thirtyDay"


async def test_a_verification_from_purchase_to_code(tv: Harness) -> None:
    number = await tv.provider.acquire(
        "whatsapp", idempotency_key="ver-1", area_code="212", carrier="tmo", max_price=Decimal("2.50")
    )
    assert bodies(tv, f"{API}/verifications") == [
        {
            "serviceName": "whatsapp",
            "capability": "sms",
            "areaCodeSelectOption": ["212"],
            "carrierSelectOption": ["tmo"],
            "maxPrice": 2.5,
        }
    ]
    assert (number.kind, number.state, number.cost) == (VERIFICATION, ProviderState.PENDING, number.cost)
    assert number.cost is not None
    assert number.cost.amount == Decimal("1.25")
    assert number.created_at.utcoffset() == timedelta(0)
    assert await tv.provider.messages(number.provider_id, VERIFICATION) == []

    tv.fake.deliver_sms(number.provider_id, "Your WhatsApp code is 123-456", "123456")
    (message,) = await tv.provider.messages(number.provider_id, VERIFICATION)
    assert (message.text, message.code, message.sender) == ("Your WhatsApp code is 123-456", "123456", "22000")
    assert message.received_at.tzinfo is not None
    assert (await tv.provider.get_verification(number.provider_id)).state is ProviderState.COMPLETED

    await tv.provider.report(number.provider_id)
    assert (await tv.provider.get_verification(number.provider_id)).state is ProviderState.REPORTED


async def test_a_verification_is_cancelled_once(tv: Harness) -> None:
    number = await tv.provider.acquire("telegram", idempotency_key="ver-1")
    await tv.provider.cancel(number.provider_id)
    assert (await tv.provider.get_verification(number.provider_id)).state is ProviderState.CANCELLED
    with pytest.raises(ProviderRejected):
        await tv.provider.cancel(number.provider_id)


async def test_messages_follow_every_page_oldest_first(tv: Harness) -> None:
    number = await tv.provider.acquire("telegram", idempotency_key="ver-1")
    for n in range(5):
        tv.fake.deliver_sms(number.provider_id, f"message {n}")
    messages = await tv.provider.messages(number.provider_id, VERIFICATION)
    assert [m.text for m in messages] == [f"message {n}" for n in range(5)]
    pages = [r for r in tv.transport.sent if r.url.path == f"{API}/sms"]
    assert [r.url.params.get("page") for r in pages] == [None, "1", "2"]
    assert {r.url.params["reservationType"] for r in pages} == {"verification"}


async def test_a_rental_from_purchase_to_refund(tv: Harness) -> None:
    tv.fake.sale_polls_before_done = 2  # the sale is still processing twice when followed
    rental = await tv.provider.rent("whatsapp", 7, idempotency_key="rent-1", area_code="415")

    assert bodies(tv, f"{API}/reservations/rental") == [
        {
            "allowBackOrderReservations": False,
            "duration": "sevenDay",
            "isRenewable": False,
            "numberType": "mobile",
            "serviceName": "whatsapp",
            "capability": "sms",
            "areaCodeSelectOption": ["415"],
        }
    ]
    sale_path = tv.fake.idempotent[("rental", "rent-1")]
    assert [str(r.url) for r in tv.transport.sent if "/sales/" in r.url.path] == [f"{BASE_URL}{sale_path}"] * 3
    assert len(tv.sleeps) == 2
    assert (rental.kind, rental.state, rental.service) == (RENTAL, ProviderState.ACTIVE, "whatsapp")
    assert rental.cost is not None
    assert rental.cost.amount == Decimal("17.50")
    assert rental.expires_at is not None
    assert rental.expires_at - rental.created_at == timedelta(days=7)

    tv.fake.deliver_sms(rental.provider_id, "hello")
    assert [m.text for m in await tv.provider.messages(rental.provider_id, RENTAL)] == ["hello"]

    extension = await tv.provider.extend(rental.provider_id, 30)
    assert bodies(tv, f"{API}/reservations/rentals/extensions") == [
        {"extensionDuration": "thirtyDay", "rentalId": rental.provider_id}
    ]
    assert extension.expires_at == rental.expires_at + timedelta(days=30)
    assert extension.cost.amount == Decimal("33.00")
    assert (await tv.provider.get_rental(rental.provider_id)).expires_at == extension.expires_at

    await tv.provider.release(rental.provider_id)
    assert (await tv.provider.get_rental(rental.provider_id)).state is ProviderState.REFUNDED
    with pytest.raises(ProviderRejected):
        await tv.provider.release(rental.provider_id)


async def test_a_sale_still_processing_is_found_again_with_the_same_key(tv: Harness) -> None:
    tv.fake.sale_polls_before_done = 7  # more than one call polls; fewer than two do
    with pytest.raises(ProviderUnavailable):
        await tv.provider.rent("whatsapp", 1, idempotency_key="rent-1")
    again = await tv.provider.rent("whatsapp", 1, idempotency_key="rent-1")
    assert list(tv.fake.rentals) == [again.provider_id]


async def test_a_rental_length_the_provider_does_not_sell_is_refused_before_sending(tv: Harness) -> None:
    with pytest.raises(ProviderUnsupportedOption) as raised:
        await tv.provider.rent("whatsapp", 5, idempotency_key="rent-1")
    assert (raised.value.status_code, raised.value.code) == (422, "provider_unsupported_option")
    with pytest.raises(ProviderUnsupportedOption):
        await tv.provider.extend("ren_1", 2)
    assert tv.transport.sent == []


async def test_every_operation_the_adapter_uses_was_checked_against_the_document(tv: Harness) -> None:
    provider = tv.provider
    await provider.list_services(VERIFICATION)
    await provider.verification_price("whatsapp")
    await provider.rental_price("whatsapp", 1)
    number = await provider.acquire("whatsapp", idempotency_key="a")
    await provider.messages(number.provider_id, VERIFICATION)
    await provider.report(number.provider_id)
    await provider.cancel((await provider.acquire("telegram", idempotency_key="b")).provider_id)
    rental = await provider.rent("whatsapp", 1, idempotency_key="c")
    await provider.extend(rental.provider_id, 1)
    await provider.release(rental.provider_id)

    used = {(r.method, _template(r.url.path)) for r in tv.transport.sent}
    assert used == {
        ("POST", "/api/pub/v2/auth"),
        ("GET", "/api/pub/v2/services"),
        ("POST", "/api/pub/v2/pricing/verifications"),
        ("POST", "/api/pub/v2/pricing/rentals"),
        ("POST", "/api/pub/v2/verifications"),
        ("GET", "/api/pub/v2/verifications/{id}"),
        ("POST", "/api/pub/v2/verifications/{id}/report"),
        ("POST", "/api/pub/v2/verifications/{id}/cancel"),
        ("GET", "/api/pub/v2/sms"),
        ("POST", "/api/pub/v2/reservations/rental"),
        ("GET", "/api/pub/v2/sales/{id}"),
        ("GET", "/api/pub/v2/reservations/rental/nonrenewable/{id}"),
        ("POST", "/api/pub/v2/reservations/rentals/extensions"),
        ("POST", "/api/pub/v2/reservations/rental/nonrenewable/{id}/refund"),
    }
    assert tv.transport.violations == []


def _template(path: str) -> str:
    """The document's path for a request path (a literal path wins over a template that would also match)."""
    templates = vendor_document()["paths"]
    if path in templates:
        return path
    return next(t for t in templates if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", t), path))


# --- the contract check itself can fail ----------------------------------------------------------------------

BEARER = {"Authorization": "Bearer t"}


def request(method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> httpx.Request:
    return httpx.Request(method, f"{BASE_URL}{path}", json=body, headers=headers if headers is not None else BEARER)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (request("POST", f"{API}/verifications", {"serviceName": "x", "capability": "sms", "max": 1}), "Additional"),
        (request("POST", f"{API}/verifications", {"serviceName": "x"}), "capability"),
        (request("POST", f"{API}/verifications", {"serviceName": "x", "capability": "fax"}), "fax"),
        (request("GET", f"{API}/services?numberType=satellite"), "numberType"),
        (request("GET", f"{API}/verifications/v1", headers={}), "bearer"),
        (request("POST", f"{API}/auth", headers={"X-API-USERNAME": "u"}), "X-API-KEY"),
        (request("POST", f"{API}/verifications/v1/cancel", headers={**BEARER, "Idempotency-Key": "k"}), "Idempotency"),
        (request("DELETE", f"{API}/verifications/v1"), "not in the document"),
    ],
)
def test_the_contract_check_refuses_requests_off_the_document(bad: httpx.Request, reason: str) -> None:
    with pytest.raises(AssertionError, match=reason):
        check_request(bad)


@pytest.mark.parametrize(
    ("path", "status", "body", "headers"),
    [
        (f"{API}/verifications/v1", 200, {"id": "v1"}, {}),  # required fields missing
        (f"{API}/auth", 200, {"token": "t", "expiresIn": 1}, {}),
        (f"{API}/verifications/v1", 418, None, {}),  # a status the document does not have
        (f"{API}/verifications", 201, {"href": "/x", "method": "GET"}, {}),  # no Location
    ],
)
def test_the_contract_check_refuses_answers_off_the_document(
    path: str, status: int, body: object, headers: dict[str, str]
) -> None:
    sent = request("POST" if path.endswith(("auth", "verifications")) else "GET", path)
    content = json.dumps(body).encode() if body is not None else b""
    answer_headers = httpx.Headers({"content-type": "application/json", **headers})
    operation = vendor_document()["paths"][path if "v1" not in path else f"{API}/verifications/{{id}}"]
    with pytest.raises(AssertionError):
        check_response(sent, status, answer_headers, content, operation[sent.method.lower()])


def test_throttling_and_outages_are_allowed_without_a_schema() -> None:
    operation = vendor_document()["paths"][f"{API}/services"]["get"]
    for status in (429, 500, 503):
        check_response(request("GET", f"{API}/services"), status, httpx.Headers(), b"", operation)
