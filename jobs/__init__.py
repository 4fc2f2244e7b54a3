"""Dramatiq actors, one module per area; importing this package declares them on the process's broker.

`namaskah worker` (or `dramatiq jobs`) loads it.
"""

from namaskah.lib.queue import setup_jobs

runtime = setup_jobs()
broker = runtime.broker

from jobs import mail, maintenance, rentals, verifications  # noqa: E402 - actors bind to the broker configured above

__all__ = ["broker", "mail", "maintenance", "rentals", "runtime", "verifications"]
