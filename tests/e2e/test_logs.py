"""Logs are JSON lines with the request's context, and never carry a credential."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.processes import Server, start_server

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQtaGVyZQ"
API_KEY = "nsk_live_4f1c2a9b8e7d6c5b4a39"
PASSWORD = "correct-horse-battery-staple-42"
REFRESH = "rt_9f8e7d6c5b4a3f2e1d0c"
SECRETS = [JWT, API_KEY, PASSWORD, REFRESH, "hunter2db"]


@pytest.fixture
def leaky_server(service_env: dict[str, str], log_dir: Path):
    env = {**service_env, "DATABASE_URL": service_env["DATABASE_URL"].replace("postgres@", "postgres:hunter2db@")}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "tests.e2e.leaky_app:create_app", "--no-access-log"]
    running = start_server(env, log_dir, argv=argv)
    yield running
    running.process.stop()


def test_no_secret_reaches_the_logs(leaky_server: Server) -> None:
    headers = {"Authorization": f"Bearer {JWT}", "X-API-Key": API_KEY, "Cookie": f"session={REFRESH}"}
    body = {"email": "ada@example.com", "password": PASSWORD, "refresh_token": REFRESH}
    with leaky_server.client() as client:
        response = client.post("/test/leak", json=body, headers=headers)
        assert response.status_code == 500
        for secret in SECRETS:
            assert secret not in response.text
        client.post("/v1/dev/pings", content=b'{"token": "' + PASSWORD.encode(), headers=headers)
        client.get("/health/ready", headers=headers)
    leaky_server.process.stop()
    output = leaky_server.process.output()
    lines = leaky_server.process.json_lines()
    # The route really logged: the lines are there, with their context, but redacted.
    attempt = next(line for line in lines if line.get("event") == "login_attempt")
    assert attempt["password"] == "[REDACTED]"
    assert attempt["headers"]["authorization"] == "[REDACTED]"
    assert attempt["email"] == "ada@example.com"
    assert attempt["request_id"]
    assert attempt["method"] == "POST"
    assert attempt["route"] == "/test/leak"
    assert any(line.get("event") == "unhandled_exception" for line in lines)
    for secret in SECRETS:
        assert secret not in output, f"{secret[:12]}... leaked into the logs"


def test_every_request_line_carries_its_context(server: Server) -> None:
    with server.client() as client:
        response = client.get("/v1/dev/pings/some-missing-token", headers={"X-Request-ID": "ctx-check-000001"})
    assert response.status_code == 404
    server.process.stop()
    access = [line for line in server.process.json_lines() if line.get("request_id") == "ctx-check-000001"]
    request_line = next(line for line in access if line.get("event") == "request")
    assert request_line["method"] == "GET"
    assert request_line["route"] == "/v1/dev/pings/{token}"
    assert request_line["status"] == 404
    assert request_line["duration_ms"] >= 0
    assert request_line["level"] == "info"
    assert request_line["timestamp"].endswith("Z")
