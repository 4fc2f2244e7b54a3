"""The retry schedule of a failed delivery: exponential backoff with jitter, within about a day."""

from __future__ import annotations

from dataclasses import dataclass

# 2**30 times any base delay is past every cap; a larger exponent would only risk an overflow.
_MAX_EXPONENT = 30


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Seconds. The n-th consecutive failure waits `base_delay * 2**(n-1)`, capped at `max_delay`, times a jitter
    factor in [1 - jitter, 1 + jitter); nothing is tried later than `window` after the series' first attempt."""

    base_delay: float = 20.0
    max_delay: float = 4 * 3600.0
    window: float = 86_400.0
    jitter: float = 0.25


def next_retry(policy: RetryPolicy, failures: int, elapsed: float, rand: float) -> float | None:
    """Seconds to wait before the next attempt after `failures` (>= 1) consecutive failures, `elapsed` seconds into
    the series; None when the series is over. `rand` in [0, 1) is the caller's random draw, so this stays pure.

    The last wait is shortened to end at the window, so the schedule uses the whole day; an attempt less than
    `base_delay` before the window's end would add nothing, so the series ends instead.
    """
    if failures < 1:
        raise ValueError("next_retry is asked after a failure")
    remaining = policy.window - elapsed
    if remaining < policy.base_delay:
        return None
    delay = min(policy.max_delay, policy.base_delay * 2.0 ** min(failures - 1, _MAX_EXPONENT))
    delay *= 1 - policy.jitter + 2 * policy.jitter * rand
    return min(delay, remaining)
