"""The token bucket with a fake clock: exact schedules, shared buckets."""

from __future__ import annotations

import pytest

from sender._ratelimit import TokenBucket, shared_bucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_tokens_come_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(9):
        bucket.acquire()
    assert clock.now == pytest.approx(102.0)  # 9 tokens at 4/s: the first free, 8 at 0.25 s


def test_idle_time_buys_at_most_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=3, clock=clock, sleep=clock.sleep)
    clock.now += 60  # a long pause
    waits = [bucket.reserve() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2])


def test_oversleeping_does_not_lower_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, clock=clock, sleep=lambda s: clock.sleep(s + 0.02))
    for _ in range(11):
        bucket.acquire()
    # Each sleep overshoots by 20 ms, yet the schedule stays 0.1 s apart on average.
    assert clock.now - 100.0 <= 1.0 + 0.02 + 1e-9


def test_one_bucket_per_relay_account_and_rate() -> None:
    a = shared_bucket("Relay.example.com", 587, "me", 5.0)
    assert shared_bucket("relay.example.com", 587, "me", 5.0) is a
    assert shared_bucket("relay.example.com", 587, "you", 5.0) is not a
    assert shared_bucket("relay.example.com", 587, "me", 6.0) is not a


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
