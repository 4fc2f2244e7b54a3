"""SMTP delivery of one message through aiosmtplib: the TLS mode, credentials, timeouts, and which failures retry."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib

from namaskah.settings import Settings


class SmtpFailure(Exception):
    """Delivery failed at `stage` (connect, tls, auth, mail, rcpt, data) with the server's `code` (0: no reply).

    The text names the stage and code only: the server's own words often quote the recipient's address, and
    Dramatiq logs a failed job's exception (and keeps its traceback with a retried message)."""

    def __init__(self, stage: str, code: int) -> None:
        super().__init__(f"SMTP delivery failed at {stage}" + (f" with reply {code}" if code else " without a reply"))
        self.stage = stage
        self.code = code


class MailDeferred(SmtpFailure):
    """A failure that may pass (relay unreachable or slow, a 4xx reply, a refused login): the job is retried."""


class MailRejected(SmtpFailure):
    """A 5xx refusal of this mail's sender, recipient or content: sending it again would be refused again."""


# The stages at which a 5xx reply is about this mail, not about our relay set-up.
_MESSAGE_STAGES = frozenset({"mail", "rcpt", "data"})


async def send_message(message: EmailMessage, settings: Settings, *, tls_context: ssl.SSLContext | None = None) -> None:
    """Send to the message's To through SMTP_HOST; raise MailDeferred or MailRejected when it does not go.

    `tls_context` replaces the default (system CAs, host name checked): tests pass one trusting their own CA.
    """
    client = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_tls == "tls",
        # Never aiosmtplib's default ("STARTTLS if offered"): `none` means none, and `starttls` is done below,
        # failing rather than sending the password and the mail in clear to a server that does not offer it.
        start_tls=False,
        tls_context=tls_context,
        # Per connection attempt and per reply; EHLO names the sender's domain, sparing a DNS lookup of our host.
        timeout=settings.smtp_timeout,
        local_hostname=parseaddr(settings.mail_from)[1].rpartition("@")[2],
    )
    stage = "connect"
    try:
        await client.connect()
        if settings.smtp_tls == "starttls":
            stage = "tls"
            await client.starttls()
        if settings.smtp_username:
            stage = "auth"
            await client.login(settings.smtp_username, settings.smtp_password)  # PLAIN or LOGIN, as offered
        stage = "mail"
        await client.send_message(message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise _failure("rcpt", min(refusal.code for refusal in exc.recipients)) from None
    except aiosmtplib.SMTPDataError as exc:
        raise _failure("data", exc.code) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _failure(stage, exc.code) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        # No reply to judge by (refused, reset, timed out, TLS handshake, an extension missing): the relay or
        # its set-up, which may come back or be fixed before the retries run out.
        raise MailDeferred(stage, 0) from None
    finally:
        await _quit(client)


def _failure(stage: str, code: int) -> SmtpFailure:
    if 500 <= code < 600 and stage in _MESSAGE_STAGES:
        return MailRejected(stage, code)
    return MailDeferred(stage, code)


async def _quit(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
