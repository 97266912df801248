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


# --- each limit of the policy, on both sides ---

MICRO = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("kwargs", "refused"),
    [
        ({"first_delay": -MICRO}, "need 0 < first_delay <= max_delay"),
        ({"first_delay": timedelta(0)}, "need 0 < first_delay <= max_delay"),
        ({"first_delay": MICRO}, None),
        ({"first_delay": timedelta(hours=1)}, None),  # first_delay == max_delay
        ({"first_delay": timedelta(hours=1) + MICRO}, "need 0 < first_delay <= max_delay"),
        ({"max_delay": timedelta(minutes=5)}, None),  # max_delay == first_delay
        ({"max_delay": timedelta(minutes=5) - MICRO}, "need 0 < first_delay <= max_delay"),
        ({"jitter": -0.01}, "jitter is a fraction between 0 and 1"),
        ({"jitter": 0.0}, None),
        ({"jitter": 1.0}, None),
        ({"jitter": 1.01}, "jitter is a fraction between 0 and 1"),
        ({"give_up_after": -MICRO}, "give_up_after cannot be negative"),
        ({"give_up_after": timedelta(0)}, None),
    ],
)
def test_policy_limits_on_each_side(kwargs: dict[str, object], refused: str | None) -> None:
    if refused is None:
        policy = RetryPolicy(**kwargs)  # type: ignore[arg-type]
        for name, value in kwargs.items():
            assert getattr(policy, name) == value
    else:
        with pytest.raises(ValueError, match=f"^{refused}$"):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_equal_first_and_max_delay_means_a_constant_delay() -> None:
    policy = RetryPolicy(first_delay=timedelta(minutes=7), max_delay=timedelta(minutes=7))
    delays = {backoff_delay(n, policy=policy, rng=Fixed(0)) for n in (1, 2, 3, 50)}
    assert delays == {timedelta(minutes=7)}


def test_attempts_below_one_are_refused_with_a_reason() -> None:
    for attempts in (0, -1):
        with pytest.raises(
            ValueError, match=r"^attempts counts the attempts made so far: at least 1$"
        ):
            backoff_delay(attempts)
    assert backoff_delay(1, rng=Fixed(0)) == timedelta(minutes=5)


def test_the_doubling_stops_after_twenty_steps_so_huge_caps_cannot_overflow() -> None:
    policy = RetryPolicy(first_delay=timedelta(days=1), max_delay=timedelta(days=999_999_999))
    assert backoff_delay(21, policy=policy, rng=Fixed(0)) == timedelta(days=2**20)
    assert backoff_delay(22, policy=policy, rng=Fixed(0)) == timedelta(days=2**20)
    assert backoff_delay(10**9, policy=policy, rng=Fixed(0)) == timedelta(days=2**20)


def test_a_retry_landing_exactly_on_the_give_up_deadline_is_still_made() -> None:
    policy = RetryPolicy(jitter=0, give_up_after=timedelta(hours=1))
    now = T0 + timedelta(minutes=55)  # the first retry (5 minutes) lands at T0 + 1 h exactly
    when = next_attempt_at(first_attempt_at=T0, attempts=1, now=now, policy=policy)
    assert when == T0 + timedelta(hours=1)
    later = now + MICRO
    assert next_attempt_at(first_attempt_at=T0, attempts=1, now=later, policy=policy) is None


def test_next_attempt_uses_the_policy_delays_and_jitter() -> None:
    policy = RetryPolicy(
        first_delay=timedelta(seconds=30), max_delay=timedelta(minutes=2), jitter=0.5
    )
    when = next_attempt_at(first_attempt_at=T0, attempts=2, now=T0, policy=policy, rng=Fixed(1))
    assert when == T0 + timedelta(seconds=90)  # 60 s doubled once, plus the full 50 % jitter


def test_no_give_up_window_gives_up_at_once() -> None:
    policy = RetryPolicy(give_up_after=timedelta(0))
    assert next_attempt_at(first_attempt_at=T0, attempts=1, now=T0, policy=policy) is None
