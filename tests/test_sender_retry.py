"""The retry policy: 5 min doubling to 1 h, jitter added, give up 3 days after the first try."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sender.retry import DEFAULT_RETRY_POLICY, RetryPolicy, backoff_delay, next_attempt_at

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Fixed:
    """A 'random' source that always picks the same point of the interval (0 low, 1 high)."""

    def __init__(self, where: float) -> None:
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.where


@pytest.mark.parametrize(
    ("attempts", "minutes"),
    [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (6, 60), (40, 60), (10_000, 60)],
)
def test_backoff_doubles_from_five_minutes_up_to_an_hour(attempts: int, minutes: int) -> None:
    assert backoff_delay(attempts, rng=Fixed(0)) == timedelta(minutes=minutes)
    assert backoff_delay(attempts, rng=Fixed(1)) == timedelta(minutes=minutes) * 1.1


def test_jitter_spreads_retries_and_never_comes_early() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(1, rng=rng) for _ in range(200)]
    assert min(delays) >= timedelta(minutes=5)
    assert max(delays) <= timedelta(minutes=5.5)
    assert len({d.total_seconds() for d in delays}) > 150  # not all in the same second


def test_next_attempt_is_now_plus_backoff() -> None:
    now = T0 + timedelta(minutes=5)
    when = next_attempt_at(first_attempt_at=T0, attempts=2, now=now, rng=Fixed(0))
    assert when == now + timedelta(minutes=10)


def test_gives_up_three_days_after_the_first_attempt() -> None:
    rng = Fixed(0)
    attempts, now, schedule = 1, T0, []
    while when := next_attempt_at(first_attempt_at=T0, attempts=attempts, now=now, rng=rng):
        schedule.append(when)
        attempts, now = attempts + 1, when
    assert schedule[:5] == [T0 + timedelta(minutes=m) for m in (5, 15, 35, 75, 135)]
    assert schedule[-1] <= T0 + timedelta(days=3)
    assert schedule[-1] + timedelta(hours=1) > T0 + timedelta(days=3)
    assert len(schedule) == 4 + (72 * 60 - 75) // 60  # four doublings, then hourly
    late = T0 + timedelta(days=3, minutes=1)
    assert next_attempt_at(first_attempt_at=T0, attempts=80, now=late) is None


def test_every_number_is_configurable() -> None:
    policy = RetryPolicy(
        first_delay=timedelta(seconds=30),
        max_delay=timedelta(minutes=2),
        jitter=0,
        give_up_after=timedelta(minutes=10),
    )
    delays = [backoff_delay(n, policy=policy) for n in (1, 2, 3, 4)]
    assert delays == [timedelta(seconds=s) for s in (30, 60, 120, 120)]
    assert (
        next_attempt_at(
            first_attempt_at=T0, attempts=9, now=T0 + timedelta(minutes=9), policy=policy
        )
        is None
    )
    assert DEFAULT_RETRY_POLICY.give_up_after == timedelta(days=3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_delay": timedelta(0)},
        {"max_delay": timedelta(minutes=1)},
        {"jitter": 1.5},
        {"give_up_after": timedelta(seconds=-1)},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0)
