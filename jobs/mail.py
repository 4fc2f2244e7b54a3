"""Mail actors: deliver one mail (an `.eml` file under DATA_DIR outside production)."""

from __future__ import annotations

from typing import Any

import dramatiq
from cryptography.fernet import InvalidToken

from jobs import runtime
from namaskah.lib.logging import get_logger
from namaskah.lib.mail import MailNotConfigured, SendMail, send

logger = get_logger(__name__)


# A plain (not async) actor: delivery is blocking I/O, which Dramatiq runs on its worker threads, off any loop.
# Retrying cannot help a missing SMTP setup or a mail sealed with a replaced SECRET_KEY.
@dramatiq.actor(
    actor_name=SendMail.actor_name,
    queue_name=SendMail.queue_name,
    max_retries=5,
    throws=(MailNotConfigured, InvalidToken),
)
def send_mail(payload: dict[str, Any]) -> None:
    job = SendMail.decode(payload)
    send(job, runtime.settings)
    # Purpose and user only: the mail's address, subject and link stay out of the log.
    logger.info("mail_sent", purpose=job.purpose, user_id=str(job.user_id) if job.user_id else None)
