"""Dramatiq actors, one module per area; importing this package declares them on the process's broker.

`namaskah worker` (or `dramatiq jobs`) loads it.
"""

from namaskah.lib.queue import setup_jobs

runtime = setup_jobs()
broker = runtime.broker

from jobs import (  # noqa: E402 - actors bind to the broker configured above
    billing,
    invoices,
    mail,
    maintenance,
    provider_events,
    reconciliation,
    rentals,
    subscriptions,
    verifications,
    webhooks,
)

__all__ = [
    "billing",
    "broker",
    "invoices",
    "mail",
    "maintenance",
    "provider_events",
    "reconciliation",
    "rentals",
    "runtime",
    "subscriptions",
    "verifications",
    "webhooks",
]
