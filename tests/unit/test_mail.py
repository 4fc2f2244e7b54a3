"""Mail delivery outside production (`.eml` files), its refusal in production, and the sealed job payload."""

from __future__ import annotations

import stat
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from cryptography.fernet import InvalidToken

from namaskah.lib.mail import Mail, MailNotConfigured, SendMail, deliver, send
from namaskah.settings import Environment, Settings

MAIL = Mail(to="ada@example.com", subject="Hello", text="Open https://app.example/x#token=ev_secret-part\n")


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=str(tmp_path), secret_key="k" * 40, **overrides)  # type: ignore[arg-type]


def test_outside_production_a_mail_is_a_private_eml_file(tmp_path: Path) -> None:
    path = deliver(MAIL, settings(tmp_path, app_env=Environment.TEST))
    assert path.parent == tmp_path / "mail"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert (message["To"], message["Subject"]) == ("ada@example.com", "Hello")
    assert message["From"] == Settings().mail_from
    assert message["Message-ID"].endswith("@namaskah.local>")
    assert message.get_content() == MAIL.text


def test_file_names_sort_by_time_and_a_redelivered_job_rewrites_its_file(tmp_path: Path) -> None:
    config = settings(tmp_path)
    jobs = [SendMail.seal(MAIL, purpose="verify_email", user_id=None, secret_key=config.secret_key) for _ in range(3)]
    paths = [send(job, config) for job in jobs]
    assert send(jobs[0], config) == paths[0]
    assert sorted(p.name for p in (tmp_path / "mail").iterdir()) == [p.name for p in paths]


def test_production_refuses_until_smtp_exists(tmp_path: Path) -> None:
    production = settings(
        tmp_path,
        app_env=Environment.PRODUCTION,
        database_url="postgresql://db/namaskah",
        redis_url="redis://cache:6379/0",
    )
    with pytest.raises(MailNotConfigured, match="SMTP"):
        deliver(MAIL, production)
    assert not (tmp_path / "mail").exists()


def test_the_job_payload_holds_no_readable_mail(tmp_path: Path) -> None:
    job = SendMail.seal(MAIL, purpose="reset_password", user_id=None, secret_key="k" * 40)
    payload = job.to_payload()
    assert set(payload) == {"mail_id", "purpose", "user_id", "sealed"}
    assert "ev_secret" not in str(payload)
    assert "ada@example.com" not in str(payload)
    assert SendMail.decode(payload).open("k" * 40) == MAIL
    with pytest.raises(InvalidToken):
        SendMail.decode(payload).open("another-secret-key-" * 3)
