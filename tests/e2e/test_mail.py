"""A registration's verification mail goes API -> outbox -> Redis -> worker -> `.eml` file, and its link works."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.databases import REDIS_URL, settings_env
from tests.support.processes import start_server, start_worker, wait_until

TOKEN = re.compile(r"#token=(ev_[A-Za-z0-9_-]+)")


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
