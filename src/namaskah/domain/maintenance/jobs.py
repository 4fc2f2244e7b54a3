"""The maintenance area's periodic jobs (sent by the scheduler) and the slow ping the worker fault tests use."""

from __future__ import annotations

from typing import Annotated

import msgspec

from namaskah.domain.maintenance.schemas import Token
from namaskah.lib.outbox.jobs import Job
from namaskah.lib.scheduler import Tick


class SweepOutbox(Tick, frozen=True, kw_only=True):
    actor_name = "maintenance.sweep_outbox"


class ExpireVerifications(Tick, frozen=True, kw_only=True):
    actor_name = "maintenance.expire_verifications"


class SweepRentals(Tick, frozen=True, kw_only=True):
    actor_name = "maintenance.sweep_rentals"


class SlowPing(Job, frozen=True, kw_only=True):
    """A ping that takes `seconds` before it is recorded; its actor exists only when APP_ENV=test."""

    actor_name = "maintenance.slow_ping"
    queue_name = "default"

    token: Token
    seconds: Annotated[float, msgspec.Meta(ge=0, le=30)]
