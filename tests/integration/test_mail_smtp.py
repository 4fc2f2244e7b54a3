"""SMTP delivery against a real SMTP server on a local port: headers and parts, AUTH, TLS modes, what retries."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from namaskah.lib.mail import SendMail, dispatch
from namaskah.lib.mail_templates import PasswordReset, render
from namaskah.lib.smtp import MailDeferred, MailRejected
from namaskah.settings import Settings
from tests.support.databases import make_settings
from tests.support.processes import free_port
from tests.support.smtp_server import Certificates, SmtpServer, make_certificates

TO = "ada@example.com"
LINK = "https://app.example/reset-password#token=pr_secret-part"
CREDENTIALS = ("mailer@example.net", "smtp-pass-Zq81")


def smtp_settings(port: int, tmp_path: Path, **overrides: str) -> Settings:
    # APP_ENV=production: the SMTP path is the production one (with SMTP_HOST set it is taken in any environment).
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_TLS": "none",
        "SMTP_TIMEOUT": "2",
        "MAIL_FROM": "Namaskah SMS <no-reply@namaskah.example>",
        "DATA_DIR": str(tmp_path),
    }
    return make_settings(**(env | overrides))


def job_for(settings: Settings, to: str = TO) -> SendMail:
    mail = render(PasswordReset(link=LINK, expires_in=timedelta(hours=1)), to=to)
    return SendMail.seal(mail, purpose="reset_password", user_id=None, secret_key=settings.secret_key)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


async def test_the_mail_arrives_with_its_headers_and_both_parts(tmp_path: Path, certificates: Certificates) -> None:
    # The server offers STARTTLS; SMTP_TLS=none must not take it (nor fail for it).
    async with SmtpServer(starttls=certificates.server) as server:
        settings = smtp_settings(server.port, tmp_path)
        job = job_for(settings)
        assert await dispatch(job, settings) == "smtp"

    [received] = server.received
    assert (received.sender, received.recipients, received.tls, received.login) == (
        "no-reply@namaskah.example",
        [TO],
        False,
        None,
    )
    assert "STARTTLS" not in server.commands
    message = received.message()
    assert message["From"] == "Namaskah SMS <no-reply@namaskah.example>"
    assert message["To"] == TO
    assert message["Subject"] == "Reset your Namaskah SMS password"
    assert message["Message-ID"] == f"<{job.mail_id}@namaskah.example>"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert LINK in plain.get_content()
    assert f'href="{LINK}"' in html.get_content()
    assert not (tmp_path / "mail").exists()  # no file beside the SMTP delivery


@pytest.mark.parametrize("method", ["PLAIN", "LOGIN"])
async def test_credentials_log_in_with_the_method_offered(tmp_path: Path, method: str) -> None:
    async with SmtpServer(auth_methods=(method,), credentials=CREDENTIALS) as server:
        settings = smtp_settings(
            server.port, tmp_path, SMTP_USERNAME=CREDENTIALS[0], SMTP_PASSWORD=CREDENTIALS[1], APP_ENV="test"
        )
        await dispatch(job_for(settings), settings)
    assert [received.login for received in server.received] == [CREDENTIALS]


async def test_a_refused_login_is_retried_and_sends_nothing(tmp_path: Path) -> None:
    async with SmtpServer(credentials=CREDENTIALS) as server:
        settings = smtp_settings(
            server.port, tmp_path, SMTP_USERNAME=CREDENTIALS[0], SMTP_PASSWORD="wrong-Zq81", APP_ENV="test"
        )
        with pytest.raises(MailDeferred) as raised:
            await dispatch(job_for(settings), settings)
    assert (raised.value.stage, raised.value.code) == ("auth", 535)
    assert "MAIL" not in server.commands
    assert server.received == []


@pytest.mark.parametrize(
    ("replies", "refused", "stage", "code"),
    [
        ({"RCPT": [451]}, MailDeferred, "rcpt", 451),
        ({"MAIL": [421]}, MailDeferred, "mail", 421),
        ({"DATA": [452]}, MailDeferred, "data", 452),
        ({"RCPT": [550]}, MailRejected, "rcpt", 550),
        ({"MAIL": [553]}, MailRejected, "mail", 553),
        ({"DATA": [554]}, MailRejected, "data", 554),
    ],
)
async def test_4xx_replies_retry_and_5xx_refusals_do_not(
    tmp_path: Path, replies: dict[str, list[int]], refused: type[Exception], stage: str, code: int
) -> None:
    async with SmtpServer(replies=replies) as server:
        settings = smtp_settings(server.port, tmp_path)
        with pytest.raises((MailDeferred, MailRejected)) as raised:
            await dispatch(job_for(settings), settings)
        assert type(raised.value) is refused
        assert (raised.value.stage, raised.value.code) == (stage, code)
        # Dramatiq logs the exception (and keeps its traceback): the server's words, quoting the address, stay out.
        assert TO not in str(raised.value)
        assert raised.value.__suppress_context__
        assert server.received == []
        # The next attempt goes through: the failure was this reply's, not the sender's state.
        await dispatch(job_for(settings), settings)
    assert len(server.received) == 1


async def test_an_unreachable_or_silent_server_is_retried_within_the_timeout(tmp_path: Path) -> None:
    closed = smtp_settings(free_port(), tmp_path)
    with pytest.raises(MailDeferred) as refused:
        await dispatch(job_for(closed), closed)
    assert (refused.value.stage, refused.value.code) == ("connect", 0)

    async with SmtpServer(greet=False) as server:
        silent = smtp_settings(server.port, tmp_path, SMTP_TIMEOUT="0.3")
        started = time.monotonic()
        with pytest.raises(MailDeferred) as timed_out:
            await dispatch(job_for(silent), silent)
        assert time.monotonic() - started < 2
    assert timed_out.value.stage == "connect"


async def test_starttls_encrypts_before_logging_in(tmp_path: Path, certificates: Certificates) -> None:
    async with SmtpServer(starttls=certificates.server, credentials=CREDENTIALS) as server:
        settings = smtp_settings(
            server.port, tmp_path, SMTP_TLS="starttls", SMTP_USERNAME=CREDENTIALS[0], SMTP_PASSWORD=CREDENTIALS[1]
        )
        await dispatch(job_for(settings), settings, tls_context=certificates.client)
    [received] = server.received
    assert (received.tls, received.login) == (True, CREDENTIALS)
    assert server.commands.index("STARTTLS") < server.commands.index("AUTH")


async def test_starttls_never_falls_back_to_clear_text(tmp_path: Path, certificates: Certificates) -> None:
    credentials = {"SMTP_USERNAME": CREDENTIALS[0], "SMTP_PASSWORD": CREDENTIALS[1], "SMTP_TLS": "starttls"}
    # A server that does not offer STARTTLS (or a man in the middle who strips it from EHLO).
    async with SmtpServer(credentials=CREDENTIALS) as plain:
        settings = smtp_settings(plain.port, tmp_path, **credentials)
        with pytest.raises(MailDeferred) as raised:
            await dispatch(job_for(settings), settings, tls_context=certificates.client)
    assert raised.value.stage == "tls"
    assert "AUTH" not in plain.commands
    assert "MAIL" not in plain.commands

    # A certificate nobody vouches for: the default context (system CAs) refuses it.
    async with SmtpServer(starttls=certificates.server, credentials=CREDENTIALS) as untrusted:
        settings = smtp_settings(untrusted.port, tmp_path, **credentials)
        with pytest.raises(MailDeferred) as raised:
            await dispatch(job_for(settings), settings)
    assert raised.value.stage == "tls"
    assert "AUTH" not in untrusted.commands
    assert untrusted.received == []


async def test_implicit_tls(tmp_path: Path, certificates: Certificates) -> None:
    async with SmtpServer(implicit_tls=certificates.server) as server:
        settings = smtp_settings(server.port, tmp_path, SMTP_TLS="tls")
        await dispatch(job_for(settings), settings, tls_context=certificates.client)
    assert [received.tls for received in server.received] == [True]


async def test_a_retried_job_sends_the_same_message(tmp_path: Path) -> None:
    async with SmtpServer() as server:
        settings = smtp_settings(server.port, tmp_path)
        job = job_for(settings)
        await dispatch(job, settings)
        await dispatch(SendMail.decode(job.to_payload()), settings)  # as a redelivered message
    ids = {received.message()["Message-ID"] for received in server.received}
    assert ids == {f"<{job.mail_id}@namaskah.example>"}
    assert uuid.UUID(str(job.mail_id)).version == 7
