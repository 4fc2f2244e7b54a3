"""The background job of an invoice: render its PDF and mail it to the buyer."""

from __future__ import annotations

import uuid

from namaskah.lib.outbox.jobs import Job


class EmailInvoice(Job, frozen=True, kw_only=True):
    actor_name = "invoices.email"
    queue_name = "mail"

    invoice_id: uuid.UUID
