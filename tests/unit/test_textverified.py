"""TextVerified transport against a fake vendor: bearer tokens, retries, idempotent creates, errors, secrets."""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest

from namaskah.lib.logging import configure_logging
from namaskah.providers import ReservationKind
from namaskah.providers.errors import (
    ProviderAuthFailed,
    ProviderBadResponse,
    ProviderError,
    ProviderNotFound,
    ProviderOutOfStock,
    ProviderPriceExceeded,
    ProviderRejected,
    ProviderUnavailable,
)
from namaskah.providers.textverified import TextVerifiedProvider
from namaskah.providers.textverified_client import Credentials
from namaskah.settings import Settings, SettingsError, load_settings
from tests.support.fake_textverified import API, API_KEY, USERNAME
from tests.support.textverified_contract import Harness, serve

AUTH = f"{API}/auth"
SERVICES = f"{API}/services"
CREATE = f"{API}/verifications"
EXTEND = f"{API}/reservations/rentals/extensions"
VERIFICATION = ReservationKind.VERIFICATION


class MaxJitter(random.Random):
    """Always the top of the jitter range, so the exponential caps themselves can be read off the sleeps."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
async def tv() -> AsyncIterator[Harness]:
    async with serve(rng=MaxJitter()) as harness:
        yield harness


def bearer_tokens(tv: Harness) -> list[str]:
    return [r.headers["Authorization"] for r in tv.transport.sent if r.url.path != AUTH]


# --- bearer token ---------------------------------------------------------------------------------------------


async def test_authenticates_with_the_documented_headers_and_reuses_the_token(tv: Harness) -> None:
    await tv.provider.list_services(VERIFICATION)
    await tv.provider.list_services(ReservationKind.RENTAL)

    auth = [r for r in tv.transport.sent if r.url.path == AUTH]
    assert len(auth) == 1
    assert (auth[0].method, auth[0].headers["X-API-USERNAME"], auth[0].headers["X-API-KEY"]) == (
        "POST",
        USERNAME,
        API_KEY,
    )
    issued = next(iter(tv.fake.tokens))
    assert bearer_tokens(tv) == [f"Bearer {issued}"] * 2
    assert all("X-API-KEY" not in r.headers for r in tv.transport.sent if r.url.path != AUTH)


async def test_token_is_renewed_shortly_before_it_expires_never_after(tv: Harness) -> None:
    await tv.provider.list_services(VERIFICATION)
    tv.clock.advance(900 - 60 - 1)  # the fake's token lives 900 s; the margin is 60 s
    await tv.provider.list_services(VERIFICATION)
    assert len(tv.fake.calls("POST", AUTH)) == 1

    tv.clock.advance(2)  # inside the margin, still valid at the fake
    await tv.provider.list_services(VERIFICATION)
    assert tv.fake.calls("POST", AUTH) == [200, 200]
    assert 401 not in tv.fake.calls("GET", SERVICES)
    assert len(set(bearer_tokens(tv))) == 2


async def test_concurrent_calls_share_one_token_request(tv: Harness) -> None:
    await asyncio.gather(*(tv.provider.list_services(VERIFICATION) for _ in range(10)))
    assert tv.fake.calls("POST", AUTH) == [200]


async def test_a_refused_token_is_renewed_once_and_the_request_repeated(tv: Harness) -> None:
    await tv.provider.list_services(VERIFICATION)
    tv.fake.revoke_tokens()  # expired or revoked at the provider before our clock says so

    services = await tv.provider.list_services(VERIFICATION)

    assert [s.name for s in services] == ["whatsapp", "telegram"]
    assert tv.fake.calls("GET", SERVICES) == [200, 401, 200]
    assert tv.fake.calls("POST", AUTH) == [200, 200]
    assert tv.sleeps == []  # a renewal is not a retry


async def test_a_second_401_is_auth_failed_without_looping(tv: Harness) -> None:
    tv.fake.reject_all_tokens = True
    with pytest.raises(ProviderAuthFailed) as raised:
        await tv.provider.list_services(VERIFICATION)
    assert (raised.value.status_code, raised.value.code) == (503, "provider_auth_failed")
    assert tv.fake.calls("GET", SERVICES) == [401, 401]
    assert tv.fake.calls("POST", AUTH) == [200, 200]


async def test_refused_credentials_are_auth_failed(tv: Harness) -> None:
    tv.fake.api_key = "another-key"
    with pytest.raises(ProviderAuthFailed):
        await tv.provider.list_services(VERIFICATION)
    assert tv.fake.calls("POST", AUTH) == [401]
    assert tv.fake.calls("GET", SERVICES) == []


async def test_a_throttled_token_request_is_retried(tv: Harness) -> None:
    tv.fake.fail_next("POST", AUTH, 429, headers={"Retry-After": "1"})
    await tv.provider.list_services(VERIFICATION)
    assert (tv.fake.calls("POST", AUTH), tv.sleeps) == ([429, 200], [1.0])


# --- retries ------------------------------------------------------------------------------------------------


async def test_429_waits_as_long_as_retry_after_says(tv: Harness) -> None:
    tv.fake.fail_next("GET", SERVICES, 429, headers={"Retry-After": "3"})
    await tv.provider.list_services(VERIFICATION)
    assert (tv.fake.calls("GET", SERVICES), tv.sleeps) == ([429, 200], [3.0])


async def test_retry_after_may_be_an_http_date(tv: Harness) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    tv.fake.fail_next("GET", SERVICES, 503, headers={"Retry-After": when})
    await tv.provider.list_services(VERIFICATION)
    assert len(tv.sleeps) == 1
    assert 3 < tv.sleeps[0] <= 5


async def test_5xx_is_retried_with_exponential_backoff_capped(tv: Harness) -> None:
    tv.fake.fail_next("GET", SERVICES, 503, times=3)
    await tv.provider.list_services(VERIFICATION)
    assert tv.fake.calls("GET", SERVICES) == [503, 503, 503, 200]
    assert tv.sleeps == [0.5, 1.0, 2.0]  # base 0.5 s doubling (the top of each jitter range)


async def test_backoff_is_capped_at_the_max_delay() -> None:
    async with serve(rng=MaxJitter(), textverified_max_retries=6, textverified_retry_max_delay=3.0) as tv:
        tv.fake.fail_next("GET", SERVICES, 502, times=6)
        await tv.provider.list_services(VERIFICATION)
    assert tv.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


async def test_jitter_is_full_random_below_the_cap() -> None:
    async with serve(rng=random.Random(42), textverified_max_retries=8, textverified_retry_max_delay=100.0) as tv:
        tv.fake.fail_next("GET", SERVICES, 500, times=8)
        await tv.provider.list_services(VERIFICATION)
    caps = [0.5 * 2**attempt for attempt in range(8)]
    assert all(0 <= slept <= cap for slept, cap in zip(tv.sleeps, caps, strict=True))
    assert len(set(tv.sleeps)) == 8
    assert sum(slept / cap for slept, cap in zip(tv.sleeps, caps, strict=True)) < 8 * 0.9  # not pinned to the cap


async def test_gives_up_after_the_retry_limit_as_provider_unavailable(tv: Harness) -> None:
    tv.fake.fail_next("GET", SERVICES, 503, times=10)
    with pytest.raises(ProviderUnavailable) as raised:
        await tv.provider.list_services(VERIFICATION)
    assert (raised.value.status_code, raised.value.code) == (503, "provider_unavailable")
    assert raised.value.headers["Retry-After"]
    assert tv.fake.calls("GET", SERVICES) == [503] * 4  # the first try and TEXTVERIFIED_MAX_RETRIES=3 more
    assert len(tv.sleeps) == 3


async def test_a_retry_after_beyond_the_cap_gives_up_at_once_and_passes_it_on(tv: Harness) -> None:
    tv.fake.fail_next("GET", SERVICES, 429, headers={"Retry-After": "120"})
    with pytest.raises(ProviderUnavailable) as raised:
        await tv.provider.list_services(VERIFICATION)
    assert raised.value.headers == {"Retry-After": "120"}
    assert (tv.fake.calls("GET", SERVICES), tv.sleeps) == ([429], [])


async def test_network_errors_on_reads_are_retried(tv: Harness) -> None:
    tv.fake.fail_next("GET", SERVICES, error=httpx.ReadTimeout, times=2)
    assert await tv.provider.list_services(VERIFICATION)
    assert len(tv.sleeps) == 2


async def test_unreachable_provider_is_unavailable(tv: Harness) -> None:
    tv.fake.fail_next("POST", AUTH, error=httpx.ConnectError, times=4)
    with pytest.raises(ProviderUnavailable):
        await tv.provider.list_services(VERIFICATION)
    assert len(tv.sleeps) == 3


async def test_an_extension_is_not_repeated_after_an_unclear_failure(tv: Harness) -> None:
    rental = await tv.provider.rent("whatsapp", 7, idempotency_key="rent-1")
    tv.fake.fail_next("POST", EXTEND, error=httpx.ReadTimeout, process=True)  # extended, answer lost
    with pytest.raises(ProviderUnavailable):
        await tv.provider.extend(rental.provider_id, 3)
    tv.fake.fail_next("POST", EXTEND, 502)
    with pytest.raises(ProviderUnavailable):
        await tv.provider.extend(rental.provider_id, 3)
    assert tv.fake.extensions == 1
    assert tv.sleeps == []


async def test_an_extension_is_repeated_after_a_429_or_when_it_never_left(tv: Harness) -> None:
    rental = await tv.provider.rent("whatsapp", 7, idempotency_key="rent-1")
    tv.fake.fail_next("POST", EXTEND, 429, headers={"Retry-After": "1"})
    tv.fake.fail_next("POST", EXTEND, error=httpx.ConnectError)
    await tv.provider.extend(rental.provider_id, 3)
    assert tv.fake.extensions == 1
    assert len(tv.sleeps) == 2


# --- creates: Idempotency-Key and Location ----------------------------------------------------------------


async def test_a_create_follows_its_location(tv: Harness) -> None:
    tv.fake.decoy_body_links = True
    number = await tv.provider.acquire("whatsapp", idempotency_key="ver-1", area_code="212", carrier="tmo")

    create, follow = [r for r in tv.transport.sent if r.url.path != AUTH]
    assert (create.method, create.url.path) == ("POST", CREATE)
    location = tv.fake.idempotent[("verification", "ver-1")]
    assert (follow.method, str(follow.url)) == ("GET", location)
    stored = tv.fake.verifications[number.provider_id]
    assert (number.phone_number, number.service) == (stored["number"], "whatsapp")
    assert number.expires_at == datetime.fromisoformat(stored["endsAt"])


async def test_a_location_on_another_host_is_not_followed(tv: Harness) -> None:
    tv.fake.location_base = "https://collector.example"
    with pytest.raises(ProviderBadResponse):
        await tv.provider.acquire("whatsapp", idempotency_key="ver-1")
    assert all(r.url.host == "www.textverified.com" for r in tv.transport.sent)


async def test_the_idempotency_key_is_stable_across_retries_of_one_create(tv: Harness) -> None:
    tv.fake.fail_next("POST", CREATE, 503, process=True)  # bought, but the answer was a 503
    tv.fake.fail_next("POST", CREATE, error=httpx.ReadTimeout, process=True)

    number = await tv.provider.acquire("whatsapp", idempotency_key="ver-42")

    creates = [r for r in tv.transport.sent if r.url.path == CREATE]
    assert [r.headers["Idempotency-Key"] for r in creates] == ["ver-42"] * 3
    assert list(tv.fake.verifications) == [number.provider_id]  # one purchase


async def test_a_second_run_with_the_same_key_finds_the_same_purchase(tv: Harness) -> None:
    first = await tv.provider.acquire("whatsapp", idempotency_key="ver-42")
    again = await tv.provider.acquire("whatsapp", idempotency_key="ver-42")
    other = await tv.provider.acquire("whatsapp", idempotency_key="ver-43")
    assert first.provider_id == again.provider_id != other.provider_id
    assert len(tv.fake.verifications) == 2


async def test_an_idempotency_conflict_waits_and_repeats_with_the_same_key(tv: Harness) -> None:
    conflict = {"errorCode": "IdempotencyConflict", "errorDescription": "still running"}
    tv.fake.fail_next("POST", CREATE, 409, body=conflict)
    await tv.provider.acquire("whatsapp", idempotency_key="ver-7")
    assert tv.fake.calls("POST", CREATE) == [409, 201]
    assert len(tv.sleeps) == 1


async def test_a_blank_idempotency_key_is_refused_before_sending(tv: Harness) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        await tv.provider.acquire("whatsapp", idempotency_key="   ")
    assert tv.transport.sent == []


# --- error mapping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "max_price", "error", "status", "code", "vendor_code"),
    [
        ("test_no_numbers", None, ProviderOutOfStock, 409, "provider_out_of_stock", "Unavailable"),
        ("whatsapp", "1.00", ProviderPriceExceeded, 409, "provider_price_exceeded", "PricingFailure"),
        ("test_insufficient_balance", None, ProviderUnavailable, 503, "provider_unavailable", "InsufficientBalance"),
        (
            "test_too_many_unfinished_verifications",
            None,
            ProviderUnavailable,
            503,
            "provider_unavailable",
            "TooManyUnfinishedVerifications",
        ),
    ],
)
async def test_vendor_error_codes_become_domain_errors(
    tv: Harness,
    service: str,
    max_price: str | None,
    error: type[ProviderError],
    status: int,
    code: str,
    vendor_code: str,
) -> None:
    limit = Decimal(max_price) if max_price else None
    with pytest.raises(error) as raised:
        await tv.provider.acquire(service, idempotency_key="k", max_price=limit)
    assert (raised.value.status_code, raised.value.code, raised.value.vendor_code) == (status, code, vendor_code)
    assert tv.fake.calls("POST", CREATE) == [400]  # a refusal is not retried
    assert "mock" not in raised.value.detail  # the vendor's free text is not shown to customers


async def test_a_refused_state_change_is_rejected(tv: Harness) -> None:
    number = await tv.provider.acquire("whatsapp", idempotency_key="k")
    tv.fake.deliver_sms(number.provider_id, "Your code is 123456", "123456")
    with pytest.raises(ProviderRejected) as raised:
        await tv.provider.cancel(number.provider_id)
    assert (raised.value.status_code, raised.value.code) == (409, "provider_rejected")


async def test_an_unknown_reservation_is_not_found(tv: Harness) -> None:
    with pytest.raises(ProviderNotFound) as raised:
        await tv.provider.get_verification("ver_missing")
    assert (raised.value.status_code, raised.value.code) == (404, "provider_not_found")


async def test_forbidden_is_auth_failed(tv: Harness) -> None:
    tv.fake.fail_next("GET", SERVICES, 403)
    with pytest.raises(ProviderAuthFailed):
        await tv.provider.list_services(VERIFICATION)


async def test_an_unreadable_answer_is_a_bad_response(tv: Harness) -> None:
    tv.fake.fail_next("GET", SERVICES, 200, body={"unexpected": True}, off_contract=True)
    with pytest.raises(ProviderBadResponse) as raised:
        await tv.provider.list_services(VERIFICATION)
    assert (raised.value.status_code, raised.value.code) == (502, "provider_bad_response")


# --- secrets and settings ----------------------------------------------------------------------------------------


async def test_the_api_key_and_tokens_stay_out_of_logs_and_errors(tv: Harness) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("DEBUG", "json", stream)
    try:
        await tv.provider.list_services(VERIFICATION)
        tv.fake.revoke_tokens()
        tv.fake.fail_next("GET", SERVICES, 503, times=10)
        with pytest.raises(ProviderUnavailable) as unavailable:
            await tv.provider.list_services(VERIFICATION)
        tv.fake.faults.clear()
        tv.fake.revoke_tokens()
        tv.fake.api_key = "rotated"
        with pytest.raises(ProviderAuthFailed) as refused:
            await tv.provider.list_services(VERIFICATION)
    finally:
        root.handlers[:], root.level = handlers, level
    output = stream.getvalue()
    assert "textverified_retry" in output  # the lines were written
    assert "textverified_auth_failed" in output
    secrets = [API_KEY, *(r.headers["Authorization"].split()[1] for r in tv.transport.sent if r.url.path != AUTH)]
    for error in (unavailable.value, refused.value):
        texts = [output, str(error), repr(error), error.detail, str(error.headers)]
        assert not [secret for secret in secrets for text in texts if secret in text]


def test_credentials_never_show_the_key() -> None:
    credentials = Credentials(USERNAME, API_KEY)
    assert API_KEY not in repr(credentials)
    assert API_KEY not in str(credentials)


@pytest.mark.parametrize("missing", ["TEXTVERIFIED_USERNAME", "TEXTVERIFIED_API_KEY"])
def test_the_adapter_needs_its_credentials(missing: str) -> None:
    env = {"SMS_PROVIDER": "textverified", "TEXTVERIFIED_USERNAME": USERNAME, "TEXTVERIFIED_API_KEY": API_KEY}
    settings = load_settings({k: v for k, v in env.items() if k != missing}, env_file=None)
    with pytest.raises(SettingsError, match=f"^invalid setting {missing}: "):
        TextVerifiedProvider.from_settings(settings)


async def test_one_pooled_client_with_every_timeout_set() -> None:
    settings = load_settings(
        {
            "SMS_PROVIDER": "textverified",
            "TEXTVERIFIED_USERNAME": USERNAME,
            "TEXTVERIFIED_API_KEY": API_KEY,
            "TEXTVERIFIED_CONNECT_TIMEOUT": "1.5",
            "TEXTVERIFIED_READ_TIMEOUT": "7",
            "TEXTVERIFIED_WRITE_TIMEOUT": "3",
            "TEXTVERIFIED_POOL_TIMEOUT": "2",
        },
        env_file=None,
    )
    provider = TextVerifiedProvider.from_settings(settings)
    client = provider._http._client
    assert client.timeout == httpx.Timeout(connect=1.5, read=7.0, write=3.0, pool=2.0)
    assert (str(client.base_url), client.follow_redirects) == ("https://www.textverified.com", False)
    await provider.aclose()
    assert client.is_closed


def test_provider_settings_have_safe_defaults_and_bounds() -> None:
    settings = Settings()
    assert (settings.sms_provider, settings.textverified_api_key) == ("simulator", "")
    with pytest.raises(SettingsError, match=r"^invalid setting TEXTVERIFIED_MAX_RETRIES: "):
        load_settings({"TEXTVERIFIED_MAX_RETRIES": "11"}, env_file=None)
    with pytest.raises(SettingsError, match=r"^invalid setting SMS_PROVIDER: "):
        load_settings({"SMS_PROVIDER": "twilio"}, env_file=None)
