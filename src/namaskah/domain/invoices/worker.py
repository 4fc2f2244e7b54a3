"""What the invoice job does, apart from Dramatiq: read the invoice (or credit note) in a short transaction, then
render its PDF and send the mail outside any transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.invoices.credit_notes import CreditNoteService
from namaskah.domain.invoices.document import Document, invoice_mail
from namaskah.domain.invoices.jobs import EmailInvoice
from namaskah.domain.invoices.schemas import CreditNoteRead, InvoiceRead
from namaskah.domain.invoices.service import InvoiceService
from namaskah.lib.logging import get_logger
from namaskah.lib.mail import SendMail, dispatch
from namaskah.lib.smtp import MailDeferred, MailRejected
from namaskah.settings import Settings

logger = get_logger(__name__)

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]
# Every mail of one invoice has the same id, so the Message-ID (and the .eml file) of a rerun is the same one.
_MAIL_IDS = uuid.UUID("5b0b6f4e-4c1e-4d53-9a55-6e7661696365")


async def _document(session: AsyncSession, settings: Settings, job: EmailInvoice) -> tuple[Document, uuid.UUID] | None:
    if job.credit_note:
        note = await CreditNoteService(session, settings=settings).load(job.invoice_id)
        return None if note is None else (CreditNoteRead.of(note), note.user_id)
    invoice = await InvoiceService(session, settings=settings).load(job.invoice_id)
    return None if invoice is None else (InvoiceRead.of(invoice), invoice.user_id)


async def email(transaction: Transaction, settings: Settings, job: EmailInvoice) -> str | None:
    """Mail the invoice's (or credit note's) PDF to its buyer; how it went (`smtp` or `file`), or None for an
    unknown one. SMTP failures raise as `namaskah.lib.mail.dispatch` says, for the actor to retry or give up."""
    async with transaction() as session:
        found = await _document(session, settings, job)
        if found is None:
            logger.warning("invoice_email_unknown_invoice", invoice_id=str(job.invoice_id), credit_note=job.credit_note)
            return None
        document, user_id = found
    mail = await invoice_mail(document)
    # Through the mail module's own delivery (SMTP_HOST or .eml files), sealed as its jobs are, but at once: the
    # PDF is made here, so it need not travel through the outbox and Redis as a second job.
    sealed = SendMail.seal(mail, purpose="invoice", user_id=user_id, secret_key=settings.secret_key)
    sealed = msgspec.structs.replace(sealed, mail_id=uuid.uuid5(_MAIL_IDS, str(document.id)))
    fields = {"invoice": document.number, "user_id": str(user_id)}
    try:
        via = await dispatch(sealed, settings)
    except (MailRejected, MailDeferred) as exc:
        # As the mail actor logs them: the stage and the server's code, never the address.
        logger.warning(
            "invoice_email_failed", **fields, stage=exc.stage, code=exc.code, retried=isinstance(exc, MailDeferred)
        )
        raise
    logger.info("invoice_emailed", **fields, via=via)
    return via
