"""The Paystack client against a fake held to Paystack's OpenAPI document: what it sends, what it reads, and which
failures it repeats (GETs) and which it does not repeat blindly (initialize)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from namaskah.domain.billing.errors import DuplicateReference, PaystackRefused, PaystackUnavailable
from namaskah.domain.billing.paystack import PaystackClient
from namaskah.domain.billing.paystack_schemas import InitializeRequest
from tests.support.fake_paystack import FakePaystack, client_for


@pytest.fixture
def fake() -> FakePaystack:
    return FakePaystack()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
async def client(fake: FakePaystack, sleeps: list[float]) -> AsyncIterator[PaystackClient]:
    paystack = client_for(fake, sleeps)
    yield paystack
    await paystack.aclose()
    assert fake.violations == []


def request(reference: str = "tu-0123456789abcdef", amount: int = 500_000) -> InitializeRequest:
    return InitializeRequest(
        email="ada@example.com", amount=amount, currency="NGN", reference=reference, metadata={"user_id": "u1"}
    )


async def test_initialize_sends_the_documented_body_and_reads_the_checkout(
    client: PaystackClient, fake: FakePaystack
) -> None:
    data = await client.initialize(request())

    assert data.reference == "tu-0123456789abcdef"
    assert data.authorization_url.startswith("https://checkout.paystack.com/")
    stored = fake.transactions["tu-0123456789abcdef"]
    assert (stored.amount, stored.currency, stored.email, stored.metadata_) == (
        500_000,
        "NGN",
        "ada@example.com",
        {"user_id": "u1"},
    )


async def test_verify_reads_the_transaction_and_answers_none_for_an_unknown_reference(
    client: PaystackClient, fake: FakePaystack
) -> None:
    await client.initialize(request())
    assert (await client.verify("tu-0123456789abcdef")).status == "abandoned"  # type: ignore[union-attr]
    fake.pay("tu-0123456789abcdef")

    paid = await client.verify("tu-0123456789abcdef")

    assert paid is not None
    assert (paid.status, paid.amount, paid.currency, paid.paid_at is not None) == ("success", 500_000, "NGN", True)
    assert await client.verify("tu-nobody") is None
    assert fake.calls("GET", "/transaction/verify/tu-nobody") == [404]


async def test_verify_is_repeated_on_5xx_429_and_network_errors_with_backoff(
    client: PaystackClient, fake: FakePaystack, sleeps: list[float]
) -> None:
    await client.initialize(request())
    path = "/transaction/verify/tu-0123456789abcdef"
    fake.fail_next("GET", path, 502)
    fake.fail_next("GET", path, 429, headers={"Retry-After": "2"})
    fake.fail_next("GET", path, error=httpx.ReadTimeout)

    answer = await client.verify("tu-0123456789abcdef")

    assert answer is not None
    assert fake.calls("GET", path) == [502, 429, -1, 200]
    assert len(sleeps) == 3
    assert sleeps[1] == 2.0  # Retry-After honoured
    assert 0 <= sleeps[0] <= 0.5
    assert 0 <= sleeps[2] <= 2.0


async def test_verify_gives_up_after_its_retries(client: PaystackClient, fake: FakePaystack) -> None:
    fake.fail_next("GET", "/transaction/verify/tu-x", 503, times=10)

    with pytest.raises(PaystackUnavailable):
        await client.verify("tu-x")

    assert fake.calls("GET", "/transaction/verify/tu-x") == [503] * 4  # the first try and 3 retries


async def test_a_429_asking_for_longer_than_the_cap_is_not_waited_for(
    client: PaystackClient, fake: FakePaystack
) -> None:
    fake.fail_next("GET", "/transaction", 429, headers={"Retry-After": "3600"})

    with pytest.raises(PaystackUnavailable):
        await client.list_transactions()

    assert fake.calls("GET", "/transaction") == [429]


async def test_an_initialize_whose_answer_was_lost_is_repeated_under_its_reference_only(
    client: PaystackClient, fake: FakePaystack
) -> None:
    # Paystack created the transaction, then the answer was lost: the repeat meets our own reference.
    fake.fail_next("POST", "/transaction/initialize", error=httpx.ReadTimeout, process=True)

    with pytest.raises(DuplicateReference):
        await client.initialize(request())

    assert fake.calls("POST", "/transaction/initialize") == [-1, 400]
    assert list(fake.transactions) == ["tu-0123456789abcdef"]  # one transaction, never a second


async def test_an_initialize_that_never_arrived_is_repeated_and_succeeds(
    client: PaystackClient, fake: FakePaystack
) -> None:
    fake.fail_next("POST", "/transaction/initialize", error=httpx.ConnectError)
    fake.fail_next("POST", "/transaction/initialize", 503)

    data = await client.initialize(request())

    assert data.reference == "tu-0123456789abcdef"
    assert fake.calls("POST", "/transaction/initialize") == [-1, 503, 200]


async def test_a_refused_key_is_not_repeated(fake: FakePaystack) -> None:
    wrong = FakePaystack(secret_key="sk_test_other")
    paystack = client_for(wrong)
    wrong.secret_key = "sk_test_rotated"  # Paystack no longer takes the key we hold
    try:
        with pytest.raises(PaystackRefused) as refused:
            await paystack.initialize(request())
    finally:
        await paystack.aclose()
    assert refused.value.status_code == 502
    assert wrong.calls("POST", "/transaction/initialize") == [401]
    assert wrong.violations == []


async def test_list_reads_a_page_with_its_meta(client: PaystackClient, fake: FakePaystack) -> None:
    for index in range(3):
        await client.initialize(request(f"tu-{index:032x}", amount=10_000 * (index + 1)))
    fake.pay(f"tu-{1:032x}")

    page = await client.list_transactions(page=1, per_page=2)
    paid = await client.list_transactions(status="success")

    assert (page.meta.total, page.meta.page_count, len(page.data)) == (3, 2, 2)
    assert [tx.amount for tx in paid.data] == [20_000]


def test_timeouts_are_explicit_and_redirects_are_not_followed(fake: FakePaystack) -> None:
    paystack = client_for(fake, paystack_connect_timeout=2.0, paystack_timeout=7.0)
    http = paystack._http
    assert (http.timeout.connect, http.timeout.read, http.timeout.write, http.timeout.pool) == (2.0, 7.0, 7.0, 2.0)
    assert http.follow_redirects is False
    assert str(http.base_url) == "https://api.paystack.co"
