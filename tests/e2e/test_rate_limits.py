"""Two API processes share one request budget per principal through Redis."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import start_server

PASSWORD = "violet-harbour-lantern-7"


def test_limit_is_shared_by_two_api_processes(service_env: dict[str, str], log_dir: Path) -> None:
    first, second = start_server(service_env, log_dir), start_server(service_env, log_dir)
    try:
        with first.client() as one, second.client() as two:
            assert one.post("/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD}).is_success
            token = one.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            answers = [(one if i % 2 else two).get("/v1/me", headers=headers) for i in range(10)]
            assert [r.status_code for r in answers] == [200] * 10
            assert [r.headers["ratelimit-remaining"] for r in answers] == [str(n) for n in range(9, -1, -1)]
            for client in (one, two):
                limited = client.get("/v1/me", headers=headers)
                assert limited.status_code == 429
                assert limited.json()["code"] == "rate_limited"
                assert int(limited.headers["retry-after"]) >= 1
    finally:
        first.process.stop()
        second.process.stop()
