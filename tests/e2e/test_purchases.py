"""The money path with the production processes: `namaskah run` and `namaskah worker` on PostgreSQL and Redis.

One stack serves the module: a copy of the migrated template database, a Redis namespace, the catalog synced by
`namaskah catalog sync`, an operator made by `namaskah users create-admin`, one API process and one Dramatiq
worker (starting them is most of a test's time on a small machine). Each test has customers of its own, and
every assertion is about their wallets and verifications. With REDIS_URL set the API runs no job itself: every
number is bought and every SMS polled by the worker process.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.test_dev_walkthrough import PASSWORD, events, sign_in
from tests.support.databases import (
    REDIS_URL,
    create_database,
    database_url,
    drop_database,
    query_value,
    run_cli,
    settings_env,
)
from tests.support.processes import Process, Server, start_server, start_worker, wait_until

pytestmark = pytest.mark.e2e

OPERATOR = "ops@example.com"
FAST = {
    "VERIFICATION_POLL_INTERVAL": "0.5",
    "VERIFICATION_EVENTS_INTERVAL": "0.2",
    "VERIFICATION_EXPIRY_SWEEP_INTERVAL": "0.5",  # the API's sweep races the worker's poll to expire
    "RENTAL_POLL_INTERVAL": "0.5",
}
Entry = tuple[str, int, int]  # (kind, amount, balance_after) of one wallet transaction


@dataclass(frozen=True)
class Customer:
    id: str
    headers: dict[str, str]
    price: int  # of a WhatsApp verification, for their tier
    rental_per_day: int


class Shop:
    """HTTP calls against the running stack, and a look at its database."""

    def __init__(self, server: Server, worker: Process, database: str) -> None:
        self.url, self.worker, self.database = server.url, worker, database
        self.client = server.client()
        self.operator = sign_in(self.client, OPERATOR)
        self.promote(self.client.get("/v1/me", headers=self.operator).json()["id"], "enterprise")

    def promote(self, user_id: str, tier: str) -> None:
        patched = self.client.patch(f"/v1/admin/users/{user_id}", json={"tier": tier}, headers=self.operator)
        assert (patched.status_code, patched.json()["tier"]) == (200, tier), patched.text

    def customer(self, name: str, credits: Callable[[Customer], int] = lambda _: 0) -> Customer:
        """A new customer on `pro` (rentals, 100 requests a minute) granted `credits(them)` by the operator."""
        headers = sign_in(self.client, f"{name}-{uuid.uuid4().hex[:8]}@example.com")
        user_id = self.client.get("/v1/me", headers=headers).json()["id"]
        self.promote(user_id, "pro")
        services = self.get("/v1/services", headers)["items"]
        service = next(s for s in services if s["slug"] == "whatsapp")
        who = Customer(user_id, headers, service["price"], service["rental_price_per_day"])
        if amount := credits(who):
            grant = {"amount": amount, "reason": "e2e credit"}
            granted = self.client.post(f"/v1/admin/users/{user_id}/credits", json=grant, headers=self.operator)
            assert (granted.status_code, granted.json()["balance_after"]) == (201, amount), granted.text
        return who

    def get(self, path: str, headers: dict[str, str]) -> Any:
        response = self.client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def buy(self, who: Customer, key: str | None = None, service: str = "whatsapp") -> httpx.Response:
        """On a connection of its own, so that purchases from several threads really run at once."""
        headers = who.headers if key is None else {**who.headers, "Idempotency-Key": key}
        return httpx.post(f"{self.url}/v1/verifications", json={"service": service}, headers=headers, timeout=30)

    def bought(self, who: Customer) -> dict[str, Any]:
        response = self.buy(who)
        assert response.status_code == 201, response.text
        assert (response.json()["status"], response.json()["phone_number"]) == ("pending", None)
        return response.json()

    def wait_for(self, who: Customer, path: str, **expected: object) -> dict[str, Any]:
        """GET `path` until the answer has the `expected` fields (the worker is expected to get it there)."""

        def reached() -> dict[str, Any] | None:
            body = self.get(path, who.headers)
            return body if all(body[field] == value for field, value in expected.items()) else None

        body: dict[str, Any] = wait_until(reached, 20, f"{path} to show {expected}", self.worker)
        return body

    def worker_logged(self, event: str, **fields: object) -> bool:
        lines = self.worker.json_lines()
        return any(line.get("event") == event and fields.items() <= line.items() for line in lines)

    def deliver(self, phone_number: str, text: str) -> None:
        delivered = self.client.post("/v1/dev/simulator/messages", json={"phone_number": phone_number, "text": text})
        assert delivered.status_code == 201, delivered.text

    def ledger(self, who: Customer) -> tuple[int, list[Entry]]:
        """The balance and the history, oldest first, checked to be a chain that never goes below zero."""
        balance = self.get("/v1/wallet", who.headers)["balance"]
        items = self.get("/v1/wallet/transactions", who.headers)["items"]
        history = [(item["kind"], item["amount"], item["balance_after"]) for item in reversed(items)]
        running = 0
        for _, amount, after in history:
            running += amount
            assert after == running >= 0, history
        assert balance == running
        return balance, history

    def bookings(self, reference: str) -> object:
        return query_value(self.database, f"SELECT count(*) FROM ledger_transactions WHERE reference = '{reference}'")


def concurrently(count: int, call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    barrier = threading.Barrier(count)

    def run(_: int) -> httpx.Response:
        barrier.wait(10)
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def problem(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("code")


def stop(started: Future[Any]) -> None:
    if started.exception() is None:
        running = started.result()
        (running.process if isinstance(running, Server) else running).stop()


@pytest.fixture(scope="module")
def shop(template_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    name, namespace = f"namaskah_t_{uuid.uuid4().hex[:12]}", f"namaskah-test-{uuid.uuid4().hex[:12]}"
    asyncio.run(create_database(name, template=template_database))
    env = settings_env(DATABASE_URL=database_url(name), REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=namespace, **FAST)
    log_dir = tmp_path_factory.mktemp("logs")
    admin = ("users", "create-admin", "--email", OPERATOR, "--password", PASSWORD)
    with ThreadPoolExecutor(4) as pool:  # the four start-ups at once
        commands = [pool.submit(run_cli, *args, env=env) for args in (("catalog", "sync"), admin)]
        server, worker = pool.submit(start_server, env, log_dir), pool.submit(start_worker, env, log_dir)
    try:
        for command in commands:
            assert command.result().returncode == 0, command.result().stderr
        running = Shop(server.result(), worker.result(), database_url(name))
        yield running
        running.client.close()
    finally:
        stop(worker)
        stop(server)
        client = redis.Redis.from_url(REDIS_URL)
        if keys := list(client.scan_iter(f"{namespace}*")):
            client.delete(*keys)
        client.close()
        asyncio.run(drop_database(name))


def test_the_worker_assigns_a_number_and_the_code_reaches_the_stream(shop: Shop) -> None:
    ada = shop.customer("ada", lambda c: c.price + 100)
    verification_id = shop.bought(ada)["id"]
    sms = "Your WhatsApp code is 590113. Do not share it."
    statuses, messages = [], []
    path = f"/v1/verifications/{verification_id}"
    with shop.client.stream("GET", f"{path}/events", headers=ada.headers, timeout=10) as stream:
        assert stream.status_code == 200
        for kind, data in events(stream):  # the server ends the stream after the final status
            if kind == "message":
                messages.append((data["text"], data["code"]))
                continue
            statuses.append((data["status"], data["code"]))
            if data["status"] == "active":
                shop.deliver(data["phone_number"], sms)

    # Opened while pending, or after the worker was already done with the number.
    assert statuses in (
        [("pending", None), ("active", None), ("completed", "590113")],
        [("active", None), ("completed", "590113")],
    )
    assert messages == [(sms, "590113")]
    shown = shop.get(path, ada.headers)
    assert (shown["status"], shown["code"], shown["price"]) == ("completed", "590113", ada.price)
    assert [(m["text"], m["code"]) for m in shown["messages"]] == messages
    assert shop.worker_logged("verification_messages_recorded", verification_id=verification_id)
    assert shop.ledger(ada) == (100, [("grant", ada.price + 100, ada.price + 100), ("purchase", -ada.price, 100)])
    assert shop.bookings(f"verification:{verification_id}") == 1
    assert shop.bookings(f"verification:{verification_id}:refund") == 0


def test_cancelling_an_active_verification_refunds_it_once(shop: Shop) -> None:
    ada = shop.customer("ada", lambda c: c.price)
    verification_id = shop.bought(ada)["id"]
    assert shop.wait_for(ada, f"/v1/verifications/{verification_id}", status="active")["phone_number"]

    cancelled = shop.client.post(f"/v1/verifications/{verification_id}/cancel", headers=ada.headers)
    again = shop.client.post(f"/v1/verifications/{verification_id}/cancel", headers=ada.headers)

    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled"), cancelled.text
    assert problem(again) == (409, "not_cancellable")
    p = ada.price
    assert shop.ledger(ada) == (p, [("grant", p, p), ("purchase", -p, 0), ("refund", p, p)])
    assert shop.bookings(f"verification:{verification_id}:refund") == 1


def test_a_verification_without_sms_expires_and_is_refunded_once(shop: Shop) -> None:
    ada = shop.customer("ada", lambda c: c.price)
    verification_id = shop.bought(ada)["id"]
    shop.wait_for(ada, f"/v1/verifications/{verification_id}", status="active")
    # VERIFICATION_WINDOW is at least 60 s: move this one's end instead, the worker's poll and the API's sweep
    # both find it overdue.
    moved = f"UPDATE verifications SET expires_at = now() - interval '1 second' WHERE id = '{verification_id}'"
    assert query_value(shop.database, f"{moved} RETURNING status") == "active"

    shown = shop.wait_for(ada, f"/v1/verifications/{verification_id}", status="expired")
    time.sleep(1.5)  # a few more polls and sweeps: none refunds again

    assert (shown["code"], shown["messages"]) == (None, [])
    p = ada.price
    assert shop.ledger(ada) == (p, [("grant", p, p), ("purchase", -p, 0), ("refund", p, p)])
    assert shop.bookings(f"verification:{verification_id}:refund") == 1
    refused = shop.client.post(f"/v1/verifications/{verification_id}/cancel", headers=ada.headers)
    assert problem(refused) == (409, "not_cancellable")


def test_one_idempotency_key_sold_concurrently_is_charged_once(shop: Shop) -> None:
    ada = shop.customer("ada", lambda c: 2 * c.price)

    answers = concurrently(10, lambda: shop.buy(ada, key="order-42"))

    assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers if a.status_code != 201]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert shop.buy(ada, key="order-42").json()["id"] in ids
    assert problem(shop.buy(ada, key="order-42", service="telegram")) == (422, "idempotency_key_reused")
    p = ada.price
    assert shop.ledger(ada) == (p, [("grant", 2 * p, 2 * p), ("purchase", -p, p)])
    assert query_value(shop.database, f"SELECT count(*) FROM verifications WHERE user_id = '{ada.id}'") == 1


def test_a_balance_for_three_sells_exactly_three_of_twelve_concurrent_purchases(shop: Shop) -> None:
    n = 3
    ada = shop.customer("ada", lambda c: n * c.price)

    answers = concurrently(4 * n, lambda: shop.buy(ada))

    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * n + [402] * (3 * n), [a.text for a in answers if a.status_code not in (201, 402)]
    assert {problem(a) for a in answers if a.status_code == 402} == {(402, "insufficient_credits")}
    balance, history = shop.ledger(ada)  # checks every balance_after is >= 0
    assert balance == 0
    assert history == [("grant", n * ada.price, n * ada.price)] + [
        ("purchase", -ada.price, (n - i) * ada.price) for i in range(1, n + 1)
    ]
    sold = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(sold) == n
    assert query_value(shop.database, f"SELECT count(*) FROM verifications WHERE user_id = '{ada.id}'") == n


def test_another_customers_verification_is_not_found(shop: Shop) -> None:
    ada, eve = shop.customer("ada", lambda c: c.price), shop.customer("eve")
    verification_id = shop.bought(ada)["id"]
    path = f"/v1/verifications/{verification_id}"

    answers = [
        shop.client.get(path, headers=eve.headers),
        shop.client.post(f"{path}/cancel", headers=eve.headers),
        shop.client.get(f"{path}/events", headers=eve.headers),
    ]

    assert [problem(a) for a in answers] == [(404, "verification_not_found")] * 3
    assert shop.get(path, ada.headers)["status"] in {"pending", "active"}
    assert shop.ledger(ada) == (0, [("grant", ada.price, ada.price), ("purchase", -ada.price, 0)])
    assert shop.ledger(eve) == (0, [])


def test_a_rental_keeps_every_sms_and_release_refunds_the_unused_days(shop: Shop) -> None:
    ada = shop.customer("ada", lambda c: 8 * c.rental_per_day)
    granted = 8 * ada.rental_per_day
    rented = shop.client.post("/v1/rentals", json={"service": "whatsapp", "days": 7}, headers=ada.headers)
    assert (rented.status_code, rented.json()["status"]) == (201, "pending"), rented.text
    rental_id, price = rented.json()["id"], rented.json()["price"]
    number = shop.wait_for(ada, f"/v1/rentals/{rental_id}", status="active")["phone_number"]
    texts = ["Your Bank code is 4417", "Your parcel arrives today"]
    for text in texts:
        shop.deliver(number, text)

    kept = shop.wait_for(ada, f"/v1/rentals/{rental_id}/messages", total=2)
    released = shop.client.post(f"/v1/rentals/{rental_id}/release", headers=ada.headers)
    again = shop.client.post(f"/v1/rentals/{rental_id}/release", headers=ada.headers)

    assert [(m["text"], m["code"]) for m in kept["items"]] == [(texts[0], "4417"), (texts[1], None)]
    assert shop.worker_logged("rental_messages_recorded", rental_id=rental_id)
    assert (released.status_code, released.json()["status"]) == (200, "released"), released.text
    assert problem(again) == (409, "rental_not_active")
    refund = 6 * (price // 7)  # assigned a moment ago: the started day is used, six whole days are not
    assert refund > 0
    assert shop.ledger(ada) == (
        granted - price + refund,
        [
            ("grant", granted, granted),
            ("rental", -price, granted - price),
            ("rental_refund", refund, granted - price + refund),
        ],
    )
    assert shop.bookings(f"rental:{rental_id}:release") == 1
