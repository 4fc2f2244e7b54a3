"""Mail actors: deliver one mail (through SMTP_HOST, or as an `.eml` file under DATA_DIR outside production)."""

from __future__ import annotations

from typing import Any

import dramatiq
from cryptography.fernet import InvalidToken

from jobs import runtime
from namaskah.lib.logging import get_logger
from namaskah.lib.mail import MailNotConfigured, SendMail, dispatch
from namaskah.lib.smtp import MailDeferred, MailRejected

logger = get_logger(__name__)


# Retried while the relay is down, slow or answers 4xx: 8 times, backing off from 15 s to 10 minutes (18 to
# 36 minutes in all, inside a reset link's hour). Retrying cannot help a missing SMTP setup, a mail sealed
# with a replaced SECRET_KEY, nor a 5xx refusal of this mail: those fail at once, dead-lettered (kept sealed).
@dramatiq.actor(
    actor_name=SendMail.actor_name,
    queue_name=SendMail.queue_name,
    max_retries=8,
    min_backoff=15_000,
    max_backoff=600_000,
    # Each SMTP step has SMTP_TIMEOUT (10 s); a whole delivery is a handful of them.
    time_limit=120_000,
    throws=(MailNotConfigured, MailRejected, InvalidToken),
)
async def send_mail(payload: dict[str, Any]) -> None:
    job = SendMail.decode(payload)
    # Purpose and user only: the mail's address, subject and link stay out of the log.
    fields = {"purpose": job.purpose, "user_id": str(job.user_id) if job.user_id else None}
    try:
        via = await dispatch(job, runtime.settings)
    except MailRejected as exc:
        logger.warning("mail_rejected", **fields, stage=exc.stage, code=exc.code)
        raise
    except MailDeferred as exc:
        logger.warning("mail_deferred", **fields, stage=exc.stage, code=exc.code)
        raise
    logger.info("mail_sent", **fields, via=via)
