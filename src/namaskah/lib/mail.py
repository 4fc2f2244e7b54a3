"""Outgoing mail: requested as a sealed `SendMail` job; written as `.eml` files outside production (no SMTP yet)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

import msgspec
from cryptography.fernet import Fernet
from uuid_utils.compat import uuid7

from namaskah.lib.outbox.jobs import Job
from namaskah.settings import Environment, Settings

MAIL_DIR = "mail"


class Mail(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    subject: str
    text: str


class MailNotConfigured(RuntimeError):
    """Production has no way to send mail yet; a worker refuses rather than drop mail on its disk."""


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


def send(job: SendMail, settings: Settings) -> Path:
    """What the `mail.send` actor does; blocking file I/O."""
    return deliver(job.open(settings.secret_key), settings, mail_id=job.mail_id)


def deliver(mail: Mail, settings: Settings, *, mail_id: uuid.UUID | None = None) -> Path:
    """Write the mail as an RFC 5322 file `<data_dir>/mail/<uuid7>.eml` (names sort by time) and return its path.

    A redelivered job passes the same `mail_id` and rewrites the same file, so it still leaves one mail.
    """
    if settings.app_env is Environment.PRODUCTION:
        raise MailNotConfigured("Mail cannot be sent in production yet: SMTP delivery arrives with the events issue.")
    directory = Path(settings.data_dir) / MAIL_DIR
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{mail_id or uuid7()}.eml"
    # mkstemp makes the file private to us (it holds a live link); the rename means no reader sees half a mail.
    fd, partial = tempfile.mkstemp(dir=directory, prefix=".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(_message(mail, settings.mail_from).as_bytes())
        Path(partial).replace(target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


def _message(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # The sender's domain, not make_msgid's default: that one asks DNS for this host's name.
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    # 8bit rather than quoted-printable: a developer opening the file sees each link whole, ready to copy.
    message.set_content(mail.text, cte="8bit")
    return message
