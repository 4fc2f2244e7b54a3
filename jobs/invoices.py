"""Invoice actors: render an issued invoice's PDF and mail it to the buyer."""

from __future__ import annotations

from typing import Any

import dramatiq
from cryptography.fernet import InvalidToken

from jobs import runtime
from namaskah.domain.invoices import worker
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.lib.mail import MailNotConfigured
from namaskah.lib.smtp import MailRejected


# The mail actor's policy (jobs/mail.py): retried while the relay is down or answers 4xx, not for a refusal.
@dramatiq.actor(
    actor_name=EmailInvoice.actor_name,
    queue_name=EmailInvoice.queue_name,
    max_retries=8,
    min_backoff=15_000,
    max_backoff=600_000,
    time_limit=120_000,
    throws=(MailNotConfigured, MailRejected, InvalidToken),
)
async def email_invoice(payload: dict[str, Any]) -> None:
    await worker.email(runtime.transaction, runtime.settings, EmailInvoice.decode(payload))
