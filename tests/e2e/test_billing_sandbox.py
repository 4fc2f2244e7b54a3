"""`make dev` with no Paystack account: a customer tops up (VAT added on top, TAX_MODE=exclusive), pays the gross on
the sandbox's checkout page, is credited the amount by the signed charge.success the sandbox posts to the real
webhook route, gets the top-up's invoice, and buys a verification. One `namaskah dev` process on SQLite."""

from __future__ import annotations

import re
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import httpx

from tests.e2e.test_dev_walkthrough import _ready, sign_in
from tests.support.processes import Process, free_port, wait_until

TOP_UP = 500_000  # NGN 5,000
CHARGED = 537_500  # with Nigeria's 7.5% VAT on top


def test_top_up_pay_in_the_sandbox_get_credited_and_buy(log_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The receiver's jobs are published by the outbox sweep: a short one here instead of a long wait.
    env = {
        "DATA_DIR": str(tmp_path / "var"),
        "LOG_FORMAT": "json",
        "PUBLIC_BASE_URL": base,
        "OUTBOX_SWEEP_INTERVAL": "0.5",
        "OUTBOX_SWEEP_AFTER": "0.5",
        "TAX_MODE": "exclusive",
    }
    dev = Process("dev", [sys.executable, "-m", "namaskah", "dev", "--port", str(port)], env, log_dir)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            wait_until(lambda: _ready(client), 90, "namaskah dev to be ready", dev)
            customer = sign_in(client, "ada@example.com")

            created = client.post("/v1/billing/topups", json={"amount": TOP_UP, "currency": "NGN"}, headers=customer)
            assert created.status_code == 201, created.text
            topup = created.json()
            assert topup["authorization_url"] == f"{base}/v1/billing/sandbox/checkout/{topup['reference']}"
            assert (topup["amount"], topup["charged_amount"], topup["tax_amount"]) == (TOP_UP, CHARGED, 37_500)

            page = client.get(topup["authorization_url"])  # what the customer's browser opens
            assert page.status_code == 200
            assert re.search(r'<form method="post"', page.text)
            assert "5375.00" in page.text  # the checkout charges the gross
            paid = client.post(topup["authorization_url"], data={})  # the Pay button
            assert paid.status_code == 200, paid.text

            # Watched in the database, not through the API: a read of the top-up would verify and credit it itself.
            database = tmp_path / "var" / "namaskah.sqlite3"
            wait_until(lambda: _settled_by(database, topup["reference"]), 30, "the webhook to credit the top-up", dev)
            assert _settled_by(database, topup["reference"]) == "webhook"
            assert client.get("/v1/wallet", headers=customer).json() == {"balance": TOP_UP, "currency": "NGN"}
            status = client.get(f"/v1/billing/topups/{topup['reference']}", headers=customer).json()
            assert status["status"] == "success"
            [invoice] = client.get("/v1/billing/invoices", headers=customer).json()["items"]
            assert (invoice["kind"], invoice["source_reference"]) == ("topup", topup["reference"])
            assert (invoice["net_total"], invoice["tax_total"], invoice["gross_total"]) == (TOP_UP, 37_500, CHARGED)
            pdf = client.get(invoice["pdf_url"], headers=customer)
            assert (pdf.status_code, pdf.content[:5]) == (200, b"%PDF-")

            price = {s["slug"]: s for s in client.get("/v1/services", headers=customer).json()["items"]}["whatsapp"]
            bought = client.post("/v1/verifications", json={"service": "whatsapp"}, headers=customer)
            assert bought.status_code == 201, bought.text
            assert client.get("/v1/wallet", headers=customer).json()["balance"] == TOP_UP - price["price"]
        events = [
            line for line in dev.json_lines() if line.get("event") in {"paystack_event_received", "topup_credited"}
        ]
        assert [e["event"] for e in events] == ["paystack_event_received", "topup_credited"]
        assert events[1]["via"] == "webhook"  # through the signed webhook, not a verify
        webhook = [
            line
            for line in dev.json_lines()
            if line.get("path") == "/v1/webhooks/paystack" and line.get("event") == "request"
        ]
        assert [line["status"] for line in webhook] == [200]
    finally:
        dev.stop()


def _settled_by(database: Path, reference: str) -> str | None:
    with closing(sqlite3.connect(database)) as connection:
        row = connection.execute("SELECT settled_by FROM topups WHERE reference = ?", (reference,)).fetchone()
    return row[0] if row else None
