"""A partner webhook end to end: `namaskah run` and `namaskah worker` on PostgreSQL and Redis, a verification completed
through the simulator, and a local receiver that gets `verification.completed` with a valid Standard Webhooks
signature, its secret in no log line."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.test_dev_walkthrough import PASSWORD, sign_in
from tests.support.databases import REDIS_URL, run_cli, settings_env
from tests.support.partners import RECEIVER_SETTINGS, grant, partner
from tests.support.processes import start_server, start_worker, wait_until
from tests.support.webhook_receiver import receiving

pytestmark = pytest.mark.e2e


def test_a_completed_verification_reaches_the_partner_signed(
    isolated_database: str, redis_namespace: str, log_dir: Path
) -> None:
    env = settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=REDIS_URL,
        DRAMATIQ_NAMESPACE=redis_namespace,
        VERIFICATION_POLL_INTERVAL="0.3",
        **RECEIVER_SETTINGS,
    )
    admin = ("users", "create-admin", "--email", "ops@example.com", "--password", PASSWORD)
    with ThreadPoolExecutor(4) as pool:
        commands = [pool.submit(run_cli, *args, env=env) for args in (("catalog", "sync"), admin)]
        started_server, started_worker = (
            pool.submit(start_server, env, log_dir),
            pool.submit(start_worker, env, log_dir),
        )
    server, worker = started_server.result(), started_worker.result()
    try:
        for command in commands:
            assert command.result().returncode == 0, command.result().stderr
        with receiving() as receiver, server.client() as client:
            operator = sign_in(client, "ops@example.com")
            them = partner(client, operator, receiver, ["verification.completed"])
            customer, secret = them.headers, them.secret
            price = next(
                s["price"]
                for s in client.get("/v1/services", headers=customer).json()["items"]
                if s["slug"] == "whatsapp"
            )
            grant(client, operator, them.id, price)
            bought = client.post("/v1/verifications", json={"service": "whatsapp"}, headers=customer)
            assert bought.status_code == 201, bought.text
            path = f"/v1/verifications/{bought.json()['id']}"

            def number() -> str | None:
                return client.get(path, headers=customer).json()["phone_number"]

            phone = wait_until(number, 20, "the worker to assign a number", worker)
            sms = {"phone_number": phone, "text": "Your WhatsApp code: 590113"}
            assert client.post("/v1/dev/simulator/messages", json=sms).status_code == 201
            wait_until(lambda: receiver.requests, 30, "the webhook to reach the receiver", worker)

            request = receiver.requests[0]
            body = them.verified(receiver)
            assert request.path == "/namaskah"
            assert body["type"] == "verification.completed"
            assert (body["data"]["id"], body["data"]["status"], body["data"]["code"]) == (
                bought.json()["id"], "completed", "590113"
            )  # fmt: skip
            assert body["data"]["phone_number"] == phone

            def succeeded() -> dict | None:
                items = them.deliveries(client)
                return items[0] if items and items[0]["status"] == "succeeded" else None

            delivery = wait_until(succeeded, 10, "the delivery to be recorded", worker)
            assert delivery["webhook_id"] == request.headers["webhook-id"]
            assert [(a["number"], a["status_code"], a["succeeded"]) for a in delivery["attempts"]] == [(1, 200, True)]
            time.sleep(0.3)  # the access log's last lines
    finally:
        worker.stop()
        server.process.stop()
    assert any(line.get("event") == "webhook_attempt" for line in worker.json_lines())
    for output in (server.process.output(), worker.output()):
        assert secret not in output
        assert secret.removeprefix("whsec_") not in output
