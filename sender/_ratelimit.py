"""A token bucket shared by every connection (and thread) that sends to one relay.

Providers count messages per account, not per connection: ``?rate=600/m`` with
``?connections=8`` must still mean 600 a minute in total, so all senders in the
process built for the same relay and account draw from one bucket
(:func:`shared_bucket`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["RateLimiter", "TokenBucket", "shared_bucket"]


class RateLimiter(Protocol):
    """Anything that hands out send slots: this module's bucket, or one shared by every
    worker through a database (``dripline.store.DatabaseRateLimit``)."""

    def acquire(self) -> None:
        """Block until the caller may send one message."""


class TokenBucket:
    """Hands out ``rate`` tokens a second, at most ``burst`` at once; thread-safe.

    Implemented as a virtual schedule (GCRA): each caller reserves the next free
    slot under a lock and then sleeps outside it, so waiting threads never hold
    the lock and the long-run rate is exact even when ``sleep`` oversleeps.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = clock()

    def reserve(self) -> float:
        """Take one token; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            # Unused capacity accumulates only up to `burst` tokens.
            earliest = now - (self.burst - 1) * self._interval
            slot = max(self._next_free, earliest)
            self._next_free = slot + self._interval
            return max(0.0, slot - now)

    def acquire(self) -> None:
        """Block until one token is available, then take it."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


_buckets: dict[tuple[str, int, str, float], TokenBucket] = {}
_buckets_lock = threading.Lock()


def shared_bucket(host: str, port: int, user: str | None, rate: float) -> TokenBucket:
    """The one bucket of this process for (relay, account, rate)."""
    key = (host.lower(), port, user or "", rate)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None:
            bucket = _buckets[key] = TokenBucket(rate)
        return bucket
