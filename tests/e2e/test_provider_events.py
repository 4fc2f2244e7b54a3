"""A signed TextVerified push completes a verification bought over HTTP, and the partner's receiver gets the
`verification.completed` webhook signed: `namaskah run` and `namaskah worker` on PostgreSQL and Redis, the simulator
assigning the number, and polling slowed down so that only the push can bring the code in."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.test_dev_walkthrough import PASSWORD, sign_in
from tests.e2e.test_purchases import stop
from tests.support.databases import REDIS_URL, query_value, run_cli, settings_env
from tests.support.partners import RECEIVER_SETTINGS, grant, partner
from tests.support.processes import Process, Server, start_server, start_worker, wait_until
from tests.support.textverified_pushes import PATH, SECRET, body_of, event, signed, sms_event
from tests.support.webhook_receiver import receiving

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(isolated_database: str, redis_namespace: str, log_dir: Path) -> Iterator[tuple[Server, Process]]:
    """The API and a worker, the catalog synced and an operator made: the four start-ups at once."""
    env = settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=REDIS_URL,
        DRAMATIQ_NAMESPACE=redis_namespace,
        TEXTVERIFIED_WEBHOOK_SECRET=SECRET,
        VERIFICATION_POLL_INTERVAL="3600",  # the first poll finds nothing; the next one is an hour away
        **RECEIVER_SETTINGS,
    )
    admin = ("users", "create-admin", "--email", "ops@example.com", "--password", PASSWORD)
    with ThreadPoolExecutor(4) as pool:
        commands = [pool.submit(run_cli, *args, env=env) for args in (("catalog", "sync"), admin)]
        server, worker = pool.submit(start_server, env, log_dir), pool.submit(start_worker, env, log_dir)
    try:
        for command in commands:
            assert command.result().returncode == 0, command.result().stderr
        yield server.result(), worker.result()
    finally:
        stop(worker)
        stop(server)


def test_a_signed_push_completes_a_verification_and_reaches_the_partner(
    stack: tuple[Server, Process], isolated_database: str
) -> None:
    server, worker = stack
    with receiving() as receiver, server.client() as client:
        operator = sign_in(client, "ops@example.com")
        them = partner(client, operator, receiver, ["verification.completed"])
        customer = them.headers
        price = next(s for s in client.get("/v1/services", headers=customer).json()["items"] if s["slug"] == "whatsapp")
        grant(client, operator, them.id, price["price"])
        bought = client.post("/v1/verifications", json={"service": "whatsapp"}, headers=customer)
        assert bought.status_code == 201, bought.text
        verification_id = bought.json()["id"]

        def column(name: str) -> object:
            # Read in the database: polling the API would spend the customer's rate limit.
            return query_value(isolated_database, f"SELECT {name} FROM verifications WHERE id = '{verification_id}'")

        wait_until(lambda: column("status") == "active", 30, "the worker to assign the number", worker)
        provider_id = column("provider_id")
        payload = sms_event(str(provider_id), "Your WhatsApp code is 731904. Don't share it.", code="731904")
        body = body_of(payload)

        forged = client.post(PATH, content=body, headers=signed(body, "whsec_someone_else"))
        first = client.post(PATH, content=body, headers=signed(body))
        retry = event("v2.sms.received", payload["data"], event_id=payload["id"], attempt=2)
        again = client.post(PATH, content=body_of(retry), headers=signed(body_of(retry)))

        assert (forged.status_code, forged.json()["code"]) == (401, "bad_signature")
        assert (first.status_code, first.json()) == (200, {"id": payload["id"], "duplicate": False})
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        wait_until(lambda: column("status") == "completed", 30, "the pushed SMS to complete the verification", worker)
        completed = client.get(f"/v1/verifications/{verification_id}", headers=customer).json()
        assert completed["status"] == "completed"
        assert completed["code"] == "731904"
        assert [(m["text"], m["code"]) for m in completed["messages"]] == [(payload["data"]["smsContent"], "731904")]
        assert client.get("/v1/wallet", headers=customer).json()["balance"] == 0  # charged once, not refunded

        wait_until(lambda: receiver.requests, 30, "the webhook to reach the partner", worker)
        webhook = them.verified(receiver)
        assert webhook["type"] == "verification.completed"
        assert (webhook["data"]["id"], webhook["data"]["code"]) == (verification_id, "731904")
        assert webhook["data"]["phone_number"] == completed["phone_number"]

    settled = "SELECT status || ' ' || detail FROM provider_events"
    assert query_value(isolated_database, settled) == f"processed sms for verification {completed['id']}"
    assert query_value(isolated_database, "SELECT count(*) FROM provider_events") == 1
    logged = [line for line in worker.json_lines() if line.get("event") == "provider_event_settled"]
    assert [(line["job"], line["status"]) for line in logged] == [("provider_events.process", "processed")]
    assert logged[0]["request_id"] == first.headers["x-request-id"]
