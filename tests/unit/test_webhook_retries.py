"""The webhook retry schedule: exponential, jittered within its bounds, capped per wait, over about a day."""

from __future__ import annotations

import random

import pytest

from namaskah.domain.webhooks.retries import RetryPolicy, next_retry

POLICY = RetryPolicy(base_delay=20.0, max_delay=4 * 3600.0, window=86_400.0, jitter=0.25)


def schedule(policy: RetryPolicy, rand: float) -> list[float]:
    """Every wait of a delivery that never succeeds, each attempt taking no time."""
    waits: list[float] = []
    elapsed = 0.0
    while (wait := next_retry(policy, len(waits) + 1, elapsed, rand)) is not None:
        waits.append(wait)
        elapsed += wait
    return waits


def test_without_jitter_the_waits_double_up_to_the_cap() -> None:
    waits = schedule(POLICY, rand=0.5)  # 0.5 is the middle of the jitter: a factor of exactly 1
    assert waits[:10] == [20.0 * 2**n for n in range(10)]
    assert waits[10:14] == [4 * 3600.0] * 4
    # The last wait ends at the window, so the series uses the whole day and no more.
    assert sum(waits) == pytest.approx(86_400.0)
    assert len(waits) == 15


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.999999])
def test_jitter_stays_within_its_bounds_and_the_day(rand: float) -> None:
    waits = schedule(POLICY, rand)
    for n, wait in enumerate(waits[:9], start=1):
        plain = 20.0 * 2 ** (n - 1)
        assert 0.75 * plain <= wait < 1.25 * plain
    assert max(waits) <= 1.25 * 4 * 3600.0
    assert sum(waits) <= 86_400.0
    assert 13 <= len(waits) <= 17


def test_random_draws_never_pass_the_window() -> None:
    generator = random.Random(7)
    for _ in range(200):
        elapsed, failures = 0.0, 0
        while (wait := next_retry(POLICY, failures + 1, elapsed, generator.random())) is not None:
            assert wait > 0
            failures, elapsed = failures + 1, elapsed + wait
        assert elapsed <= POLICY.window
        assert POLICY.window - elapsed < 1.25 * POLICY.max_delay


def test_the_series_ends_near_or_past_the_window() -> None:
    assert next_retry(POLICY, 3, 86_400.0, 0.5) is None
    assert next_retry(POLICY, 3, 90_000.0, 0.5) is None
    assert next_retry(POLICY, 3, 86_400.0 - 19.0, 0.5) is None  # less than a base delay left: nothing to add
    assert next_retry(POLICY, 3, 86_400.0 - 30.0, 0.5) == 30.0  # shortened to end at the window


def test_huge_failure_counts_do_not_overflow() -> None:
    assert next_retry(POLICY, 10_000, 0.0, 0.5) == 4 * 3600.0


def test_it_is_asked_only_after_a_failure() -> None:
    with pytest.raises(ValueError, match="after a failure"):
        next_retry(POLICY, 0, 0.0, 0.5)
