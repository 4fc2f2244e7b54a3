"""A job requested by an HTTP request reaches a real worker through real Redis, after commit, even across an outage."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.e2e.test_dev_walkthrough import PASSWORD, sign_in
from tests.support.databases import query_value, run_cli, settings_env
from tests.support.partners import grant
from tests.support.processes import Process, Server, free_port, start_redis, start_server, start_worker, wait_until


def recorded(client: httpx.Client, token: str) -> dict | None:
    response = client.get(f"/v1/dev/pings/{token}")
    return response.json() if response.status_code == 200 else None


def test_ping_reaches_the_worker_with_its_request_id(server: Server, worker: Process) -> None:
    token = f"e2e-{uuid.uuid4().hex[:12]}"
    request_id = f"e2e-request-{uuid.uuid4().hex[:8]}"
    with server.client() as client:
        response = client.post("/v1/dev/pings", json={"token": token}, headers={"X-Request-ID": request_id})
        assert response.status_code == 202, response.text
        ping = wait_until(lambda: recorded(client, token), 20, "the worker to record the ping", worker)
    assert ping["request_id"] == request_id
    job_lines = [line for line in worker.json_lines() if line.get("event") == "ping_recorded"]
    assert [line["request_id"] for line in job_lines] == [request_id]
    assert job_lines[0]["job"] == "maintenance.ping"


def test_job_is_not_lost_while_redis_is_down(isolated_database: str, redis_namespace: str, log_dir: Path) -> None:
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=redis_url,
        DRAMATIQ_NAMESPACE=redis_namespace,
        OUTBOX_SWEEP_INTERVAL="0.5",
        OUTBOX_SWEEP_AFTER="1",
    )
    redis_server = start_redis(port, log_dir)
    server = start_server(env, log_dir)
    worker = start_worker(env, log_dir)
    try:
        redis_server.stop()
        token = f"outage-{uuid.uuid4().hex[:12]}"
        with server.client() as client:
            response = client.post("/v1/dev/pings", json={"token": token})
            assert response.status_code == 202, response.text
            assert client.get("/health/ready").status_code == 503
            wait_until(
                lambda: any(line.get("event") == "outbox_publish_failed" for line in server.process.json_lines()),
                10,
                "the failed publish to be logged",
                server.process,
            )
            assert recorded(client, token) is None
            unpublished = "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL"
            assert query_value(isolated_database, unpublished) == 1

            redis_server = start_redis(port, log_dir)
            ping = wait_until(lambda: recorded(client, token), 45, "the ping after Redis came back", worker)
        assert ping["token"] == token
        assert query_value(isolated_database, unpublished) == 0
        assert any(line.get("event") == "outbox_swept" for line in server.process.json_lines())
    finally:
        worker.stop()
        server.process.stop()
        redis_server.stop()


def test_purchases_made_while_redis_is_down_lose_no_job(
    isolated_database: str, redis_namespace: str, log_dir: Path
) -> None:
    """Customers keep buying through an outage (201, charged); the outbox holds their jobs, and once Redis is back
    the worker assigns every number: none lost, none bought twice."""
    port = free_port()
    env = settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        DRAMATIQ_NAMESPACE=redis_namespace,
        OUTBOX_SWEEP_INTERVAL="0.5",
        OUTBOX_SWEEP_AFTER="1",
    )
    admin = ("users", "create-admin", "--email", "ops@example.com", "--password", PASSWORD)
    for command in (("catalog", "sync"), admin):
        assert run_cli(*command, env=env).returncode == 0
    redis_server = start_redis(port, log_dir)
    server, worker = start_server(env, log_dir), start_worker(env, log_dir)
    bought: list[str] = []
    try:
        with server.client() as client:
            operator, customer = sign_in(client, "ops@example.com"), sign_in(client, "buyer@example.com")
            user_id = client.get("/v1/me", headers=customer).json()["id"]
            price = next(
                s for s in client.get("/v1/services", headers=customer).json()["items"] if s["slug"] == "whatsapp"
            )
            grant(client, operator, user_id, 6 * price["price"])

            redis_server.stop()
            for n in range(6):
                response = client.post(
                    "/v1/verifications", json={"service": "whatsapp"}, headers={**customer, "Idempotency-Key": f"k{n}"}
                )
                assert response.status_code == 201, response.text
                bought.append(response.json()["id"])
            assert client.get("/v1/wallet", headers=customer).json()["balance"] == 0
            unsent = "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL"
            assert query_value(isolated_database, unsent) >= 6  # the acquire jobs, waiting in the database
            assert query_value(isolated_database, "SELECT count(*) FROM verifications WHERE status = 'active'") == 0

            redis_server = start_redis(port, log_dir)
            active = "SELECT count(*) FROM verifications WHERE status = 'active' AND phone_number IS NOT NULL"
            wait_until(lambda: query_value(isolated_database, active) == 6, 60, "every number after the outage", worker)
            assert query_value(isolated_database, unsent) == 0
            numbers = "SELECT count(DISTINCT phone_number) FROM verifications"
            assert query_value(isolated_database, numbers) == 6
            assert client.get("/v1/wallet", headers=customer).json()["balance"] == 0  # charged once each
    finally:
        worker.stop()
        server.process.stop()
        redis_server.stop()
    # One reservation per purchase: the redelivered jobs found nothing left to do twice.
    reservations = "SELECT count(DISTINCT provider_id) FROM verifications WHERE provider_id IS NOT NULL"
    assert query_value(isolated_database, reservations) == len(bought) == 6
