"""`make dev` on a bare machine: an operator grants credits, a customer buys a verification, the simulator
delivers an SMS, and the code appears on the verification's event stream. One `namaskah dev` process, SQLite."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.databases import run_cli
from tests.support.processes import Process, free_port, wait_until

PASSWORD = "violet-harbour-lantern-7"


def events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) as the server sends them, comments skipped."""
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind:
            yield kind, json.loads(line.removeprefix("data: "))
            kind = ""


def sign_in(client: httpx.Client, email: str) -> dict[str, str]:
    client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    response = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_grant_buy_deliver_and_read_the_code_on_the_stream(log_dir: Path, tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path / "var"), "LOG_FORMAT": "json", "VERIFICATION_POLL_INTERVAL": "0.3"}
    port = free_port()
    dev = Process("dev", [sys.executable, "-m", "namaskah", "dev", "--port", str(port)], env, log_dir)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(lambda: _ready(client), 90, "namaskah dev to be ready", dev)
            admin = run_cli("users", "create-admin", "--email", "ops@example.com", "--password", PASSWORD, env=env)
            assert admin.returncode == 0, admin.stderr
            operator, customer = sign_in(client, "ops@example.com"), sign_in(client, "ada@example.com")
            user_id = client.get("/v1/me", headers=customer).json()["id"]
            services = {s["slug"]: s for s in client.get("/v1/services", headers=customer).json()["items"]}
            price = services["whatsapp"]["price"]
            grant = {"amount": price, "reason": "welcome credit"}
            granted = client.post(f"/v1/admin/users/{user_id}/credits", json=grant, headers=operator)
            assert granted.status_code == 201, granted.text

            bought = client.post("/v1/verifications", json={"service": "whatsapp"}, headers=customer)
            assert bought.status_code == 201, bought.text
            verification_id = bought.json()["id"]
            seen = []
            path = f"/v1/verifications/{verification_id}/events"
            with client.stream("GET", path, headers=customer, timeout=60) as stream:
                for kind, data in events(stream):
                    seen.append((kind, data.get("status")))
                    if kind == "status" and data["status"] == "active":
                        sms = {"phone_number": data["phone_number"], "text": "Your WhatsApp code: 590-113 or 590113"}
                        delivered = client.post("/v1/dev/simulator/messages", json=sms)
                        assert delivered.status_code == 201, delivered.text
                    if kind == "status" and data["status"] == "completed":
                        assert data["code"] == "590113"
                        break
            # The stream opens with the state at that moment: the in-process worker may have assigned the number.
            assert seen[0] in {("status", "pending"), ("status", "active")}
            assert ("message", None) in seen
            assert seen[-1] == ("status", "completed")
            assert client.get("/v1/wallet", headers=customer).json()["balance"] == 0
    finally:
        dev.stop()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/health/ready").status_code == 200
    except httpx.HTTPError:
        return False
