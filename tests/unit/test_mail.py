"""Mail as `.eml` files outside production, its refusal in production without SMTP, the sealed job, mail settings."""

from __future__ import annotations

import asyncio
import stat
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.fernet import InvalidToken

from namaskah.lib.mail import Mail, MailNotConfigured, SendMail, deliver, dispatch, send
from namaskah.settings import Environment, Settings, SettingsError, load_settings

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


def test_a_mail_with_html_is_a_multipart_file_with_both_parts(tmp_path: Path) -> None:
    mail = Mail(to="ada@example.com", subject="Hi", text="Plain words\n", html="<p>Rich &amp; words</p>\n")
    mail_id = uuid.UUID("0193c6f2-0000-7000-8000-000000000001")
    message = read(deliver(mail, settings(tmp_path), mail_id=mail_id))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert (plain.get_content(), html.get_content()) == (mail.text, mail.html)
    assert message["Message-ID"] == f"<{mail_id}@namaskah.local>"


def test_production_without_smtp_refuses(tmp_path: Path) -> None:
    production = settings(
        tmp_path,
        app_env=Environment.PRODUCTION,
        database_url="postgresql://db/namaskah",
        redis_url="redis://cache:6379/0",
    )
    job = SendMail.seal(MAIL, purpose="verify_email", user_id=None, secret_key=production.secret_key)
    with pytest.raises(MailNotConfigured, match="SMTP_HOST"):
        deliver(MAIL, production)
    with pytest.raises(MailNotConfigured, match="SMTP_HOST"):
        asyncio.run(dispatch(job, production))
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


def read(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://db/namaskah",
    "REDIS_URL": "redis://cache:6379/0",
    "SECRET_KEY": "s" * 40,
    "SMTP_HOST": "smtp.example.net",
}


def test_the_smtp_password_is_never_shown() -> None:
    shown = repr(load_settings({**PRODUCTION, "SMTP_USERNAME": "mailer", "SMTP_PASSWORD": "hunter2-smtp"}, None))
    assert "hunter2-smtp" not in shown
    assert "smtp_password=***" in shown
    assert "smtp_username='mailer'" in shown


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SMTP_USERNAME": "mailer"}, "SMTP_PASSWORD"),
        ({"SMTP_PASSWORD": "hunter2-smtp"}, "SMTP_USERNAME"),
        ({"SMTP_USERNAME": "mailer", "SMTP_PASSWORD": "hunter2-smtp", "SMTP_TLS": "none"}, "SMTP_TLS"),
        ({"SMTP_TLS": "ssl"}, "SMTP_TLS"),
        ({"SMTP_PORT": "0"}, "SMTP_PORT"),
        ({"SMTP_TIMEOUT": "0"}, "SMTP_TIMEOUT"),
        ({"MAIL_FROM": "Namaskah SMS"}, "MAIL_FROM"),
        ({"PUBLIC_BASE_URL": "app.example"}, "PUBLIC_BASE_URL"),
    ],
)
def test_bad_mail_settings_stop_start_up(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"^invalid setting {variable}: "):
        load_settings({**PRODUCTION, **env}, env_file=None)


def test_credentials_in_clear_are_allowed_to_a_local_relay_and_outside_production() -> None:
    clear = {"SMTP_USERNAME": "mailer", "SMTP_PASSWORD": "hunter2-smtp", "SMTP_TLS": "none"}
    assert load_settings({**PRODUCTION, **clear, "SMTP_HOST": "127.0.0.1"}, env_file=None).smtp_tls == "none"
    assert load_settings({**clear, "SMTP_HOST": "smtp.example.net"}, env_file=None).smtp_username == "mailer"
