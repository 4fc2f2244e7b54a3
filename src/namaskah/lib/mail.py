"""Outgoing mail: requested as a sealed `SendMail` job; sent through SMTP_HOST, else written as `.eml` files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import tempfile
import uuid
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path

import msgspec
from cryptography.fernet import Fernet
from uuid_utils.compat import uuid7

from namaskah.lib import smtp
from namaskah.lib.outbox.jobs import Job
from namaskah.settings import Environment, Settings

MAIL_DIR = "mail"


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A file sent with a mail (an invoice's PDF): `content_type` is `type/subtype`."""

    filename: str
    content_type: str
    data: bytes


class Mail(msgspec.Struct, frozen=True, kw_only=True):
    """One mail, as `namaskah.lib.mail_templates.render` makes it: a text part always, an HTML one beside it, and
    any attachments after them (multipart/mixed)."""

    to: str
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()


class MailNotConfigured(RuntimeError):
    """Production without SMTP_HOST: a worker refuses rather than drop mail on its disk."""


def _sealing_key(secret_key: str) -> Fernet:
    # Its own key derived from SECRET_KEY, as for TOTP secrets: never the JWT signing key itself.
    digest = hmac.new(secret_key.encode(), b"namaskah/outbox-mail", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SendMail(Job, frozen=True, kw_only=True):
    """Deliver one mail. It travels encrypted: its body holds a single-use link, published outbox rows stay in
    the database, and Dramatiq writes a failed message's arguments to the log. Only purpose and user id are
    in clear, for the worker's log line."""

    actor_name = "mail.send"
    queue_name = "mail"

    mail_id: uuid.UUID
    purpose: str
    user_id: uuid.UUID | None = None
    sealed: str

    @classmethod
    def seal(cls, mail: Mail, *, purpose: str, user_id: uuid.UUID | None, secret_key: str) -> SendMail:
        sealed = _sealing_key(secret_key).encrypt(msgspec.json.encode(mail)).decode()
        return cls(mail_id=uuid.UUID(str(uuid7())), purpose=purpose, user_id=user_id, sealed=sealed)

    def open(self, secret_key: str) -> Mail:
        """The mail; cryptography's InvalidToken if SECRET_KEY changed since it was sealed."""
        return msgspec.json.decode(_sealing_key(secret_key).decrypt(self.sealed.encode()), type=Mail)


async def dispatch(job: SendMail, settings: Settings, *, tls_context: ssl.SSLContext | None = None) -> str:
    """What the `mail.send` actor does, answering how: `smtp` when SMTP_HOST is set (any environment), else
    `file` (an `.eml` file; MailNotConfigured in production). SMTP failures raise smtp.MailDeferred (worth a
    retry) or smtp.MailRejected (not)."""
    if not settings.smtp_host:
        await asyncio.to_thread(send, job, settings)
        return "file"
    message = build_message(job.open(settings.secret_key), settings.mail_from, mail_id=job.mail_id)
    await smtp.send_message(message, settings, tls_context=tls_context)
    return "smtp"


def send(job: SendMail, settings: Settings) -> Path:
    """The `.eml` delivery of a job (`dispatch` without SMTP_HOST); blocking file I/O."""
    return deliver(job.open(settings.secret_key), settings, mail_id=job.mail_id)


def deliver(mail: Mail, settings: Settings, *, mail_id: uuid.UUID | None = None) -> Path:
    """Write the mail as an RFC 5322 file `<data_dir>/mail/<uuid7>.eml` (names sort by time) and return its path.

    A redelivered job passes the same `mail_id` and rewrites the same file, so it still leaves one mail.
    """
    if settings.app_env is Environment.PRODUCTION:
        raise MailNotConfigured("Mail cannot be sent in production without SMTP: set SMTP_HOST (see .env.example).")
    directory = Path(settings.data_dir) / MAIL_DIR
    directory.mkdir(parents=True, exist_ok=True)
    mail_id = mail_id or uuid.UUID(str(uuid7()))
    target = directory / f"{mail_id}.eml"
    # mkstemp makes the file private to us (it holds a live link); the rename means no reader sees half a mail.
    fd, partial = tempfile.mkstemp(dir=directory, prefix=".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            # 8bit rather than quoted-printable: a developer opening the file sees each link whole, ready to copy.
            file.write(build_message(mail, settings.mail_from, mail_id=mail_id, cte="8bit").as_bytes())
        Path(partial).replace(target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


def build_message(mail: Mail, sender: str, *, mail_id: uuid.UUID, cte: str | None = None) -> EmailMessage:
    """The RFC 5322 message: text/plain, or multipart/alternative with the HTML part last (the one preferred),
    inside multipart/mixed when there are attachments (always base64).

    The Message-ID comes from the job's id, so a mail sent again by a retried job is the same message to the
    recipient's client. `cte=None` lets the library choose an encoding any server carries.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # The sender's domain, as make_msgid's default would ask DNS for this host's name.
    message["Message-ID"] = f"<{mail_id}@{parseaddr(sender)[1].rpartition('@')[2] or 'localhost'}>"
    message.set_content(mail.text, cte=cte)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html", cte=cte)
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message
