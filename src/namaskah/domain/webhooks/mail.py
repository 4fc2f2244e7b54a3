"""The mail telling an owner that their webhook endpoint was disabled (the one place it is put together)."""

from __future__ import annotations

import uuid
from datetime import datetime

from namaskah.lib.mail import Mail
from namaskah.lib.mail_templates import WebhookEndpointDisabled, render

# Where the front end shows one endpoint, its deliveries and the button that enables it again.
MANAGE_PATH = "/webhooks/{endpoint_id}"


def endpoint_disabled_mail(
    to: str, *, endpoint_id: uuid.UUID, url: str, failing_since: datetime, public_base_url: str
) -> Mail:
    manage_url = public_base_url.rstrip("/") + MANAGE_PATH.format(endpoint_id=endpoint_id)
    return render(WebhookEndpointDisabled(endpoint_url=url, failing_since=failing_since, manage_url=manage_url), to=to)
