"""The background job of an invoice or a credit note: render its PDF and mail it to the buyer."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job


class EmailInvoice(Job, frozen=True, kw_only=True, omit_defaults=True):
    actor_name = "invoices.email"
    queue_name = "mail"

    # The document's id: an invoice's, or a credit note's when `credit_note` (one job and actor for both; jobs
    # queued before credit notes existed decode as invoices, and an invoice's payload is what it was).
    invoice_id: uuid.UUID
    credit_note: bool = False
