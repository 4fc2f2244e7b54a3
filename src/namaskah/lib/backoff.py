"""Exponential backoff with full jitter, the retry pause of every outgoing HTTP client here."""

from __future__ import annotations

import random


def full_jitter(attempt: int, *, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Anywhere between 0 and the exponential cap (`base_delay * 2**attempt`, at most `max_delay`), so many
    clients retrying at once do not retry in step."""
    return rng.uniform(0, min(max_delay, base_delay * 2**attempt))
