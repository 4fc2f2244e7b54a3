"""Account mail goes API -> outbox -> Redis -> worker -> an `.eml` file (dev) or an SMTP server (production)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from tests.support.databases import REDIS_URL, settings_env
from tests.support.processes import Process, start_server, start_worker, wait_until
from tests.support.smtp_server import SmtpServer

TOKEN = re.compile(r"#token=(ev_[A-Za-z0-9_-]+)")
RESET_TOKEN = re.compile(r"#token=(pr_[A-Za-z0-9_-]+)")
PASSWORD = "violet-harbour-lantern-7"


def test_the_worker_writes_the_verification_mail(
    isolated_database: str, redis_namespace: str, log_dir: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = settings_env(
        DATABASE_URL=isolated_database, REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=redis_namespace, DATA_DIR=str(data_dir)
    )
    server = start_server(env, log_dir)
    worker = start_worker(env, log_dir)
    try:
        with server.client() as client:
            response = client.post(
                "/v1/auth/register", json={"email": "grace@example.com", "password": "violet-harbour-lantern-7"}
            )
            assert response.status_code == 201, response.text
            user_id = response.json()["id"]
            [path] = wait_until(lambda: list((data_dir / "mail").glob("*.eml")), 20, "the mail file", worker)
            token = TOKEN.search(path.read_text())
            assert token is not None
            verified = client.post("/v1/auth/email/verify", json={"token": token[1]})
            assert verified.status_code == 200, verified.text
        sent = [line for line in worker.json_lines() if line.get("event") == "mail_sent"]
        assert [(line["purpose"], line["user_id"], line["job"]) for line in sent] == [
            ("verify_email", user_id, "mail.send")
        ]
    finally:
        worker.stop()
        server.process.stop()
    for process in (server.process, worker):
        assert token[1] not in process.output()
        assert "grace@example.com" not in process.output()


def test_in_production_the_worker_sends_through_smtp_and_retries_only_what_may_pass(
    isolated_database: str, redis_namespace: str, log_dir: Path
) -> None:
    smtp_password = "smtp-" + secrets.token_urlsafe(12)
    smtp = SmtpServer(
        auth_methods=("LOGIN",),
        credentials=("mailer", smtp_password),
        refuse={"gone@example.com": 550, "busy@example.com": 451},
    )
    with smtp.in_thread():
        env = settings_env(
            APP_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(32),
            DATABASE_URL=isolated_database,
            REDIS_URL=REDIS_URL,
            DRAMATIQ_NAMESPACE=redis_namespace,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp.port),
            SMTP_TLS="none",  # production allows credentials in clear to a local relay only
            SMTP_USERNAME="mailer",
            SMTP_PASSWORD=smtp_password,
            SMTP_TIMEOUT="5",
            MAIL_FROM="Namaskah SMS <no-reply@namaskah.example>",
        )
        server = start_server(env, log_dir)
        worker = start_worker(env, log_dir)
        try:
            with server.client() as client:
                for email in ("grace@example.com", "gone@example.com", "busy@example.com"):
                    response = client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
                    assert response.status_code == 201, response.text
                assert client.post("/v1/auth/password/forgot", json={"email": "grace@example.com"}).status_code == 202

                wait_until(lambda: len(smtp.received) == 2, 20, "two mails for grace", worker)
                verification, reset = sorted(smtp.received, key=lambda r: r.message()["Subject"])
                assert verification.message()["Subject"] == "Confirm your email address"
                message = reset.message()
                assert (reset.sender, reset.recipients, reset.login) == (
                    "no-reply@namaskah.example",
                    ["grace@example.com"],
                    ("mailer", smtp_password),
                )
                assert (message["To"], message["Subject"]) == ("grace@example.com", "Reset your Namaskah SMS password")
                assert message.get_body(("html",)) is not None
                plain = message.get_body(("plain",))
                assert plain is not None
                token = RESET_TOKEN.search(plain.get_content())
                assert token is not None
                new_password = "copper-meadow-signal-42"
                reset_response = client.post(
                    "/v1/auth/password/reset", json={"token": token[1], "new_password": new_password}
                )
                assert reset_response.status_code == 204, reset_response.text
                login = client.post("/v1/auth/login", json={"email": "grace@example.com", "password": new_password})
                assert login.status_code == 200, login.text

                outcomes = wait_until(lambda: _outcomes(worker), 20, "the refused mails' outcomes", worker)
        finally:
            worker.stop()
            server.process.stop()

    assert sorted(outcomes) == ["mail_deferred", "mail_rejected"]
    deferred, rejected = outcomes["mail_deferred"], outcomes["mail_rejected"]
    assert (deferred["stage"], deferred["code"], deferred["purpose"]) == ("rcpt", 451, "verify_email")
    assert (rejected["stage"], rejected["code"], rejected["purpose"]) == ("rcpt", 550, "verify_email")
    output = worker.output()
    # A 451 is retried (later: Dramatiq's backoff); a 550 fails at once and is dead-lettered, never retried.
    assert f"Retrying message '{deferred['message_id']}'" in output
    assert f"Aborting message '{rejected['message_id']}'" in output
    assert f"Retrying message '{rejected['message_id']}'" not in output
    sent = [line["via"] for line in worker.json_lines() if line.get("event") == "mail_sent"]
    assert sent == ["smtp", "smtp"]
    for process in (server.process, worker):
        for secret in (smtp_password, token[1], "grace@example.com", "gone@example.com", "busy@example.com"):
            assert secret not in process.output(), f"{secret[:8]}... reached the {process.name} log"


def _outcomes(worker: Process) -> dict[str, dict] | None:
    lines = {
        line["event"]: line for line in worker.json_lines() if line.get("event") in {"mail_deferred", "mail_rejected"}
    }
    return lines if len(lines) == 2 else None
