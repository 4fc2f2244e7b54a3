"""The subscriptions area's periodic job: the renewal sweep the scheduler sends."""

from __future__ import annotations

from namaskah.lib.scheduler import Tick


class SweepSubscriptions(Tick, frozen=True, kw_only=True):
    actor_name = "subscriptions.sweep"
