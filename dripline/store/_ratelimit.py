"""``?rate=`` for the whole fleet: send slots handed out through the database.

Providers count messages per account, whatever the number of processes sending.
Each relay account has a row in ``rate_limits`` holding its next free slot
(seconds since the epoch). A worker reserves a small block of consecutive slots
in one short transaction (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) and hands them to its own connections one by one, each
caller sleeping until its slot. Slots a worker reserved but did not use in time
are dropped, never spent late in a burst, so N workers together stay at or under
the rate (GCRA with a burst of one block of the rate's own spacing).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ._engine import write_transaction
from ._models import RateLimit

__all__ = ["DatabaseRateLimit"]

_R = RateLimit.__table__


class DatabaseRateLimit:
    """A token bucket shared by every worker on one database; thread-safe.

    ``key`` names the relay account (e.g. ``smtp://relay:587/user``); ``rate`` is in
    messages per second. ``block`` slots are reserved per transaction (default: about
    a fifth of a second's worth, 1 to 64). ``clock`` is wall-clock seconds (all workers
    must share it: one host, or hosts kept in sync by NTP).
    """

    def __init__(
        self,
        engine: Engine,
        key: str,
        rate: float,
        *,
        block: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.engine = engine
        self.key = key[:400]
        self.rate = rate
        self.interval = 1.0 / rate
        self.block = block or max(1, min(64, int(rate / 5)))
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one slot; how long the caller must wait (seconds) before using it."""
        with self._lock:
            now = self._clock()
            while self._slots and self._slots[0] < now - self.interval:
                self._slots.popleft()  # reserved but not used in time: never spent late
            if not self._slots:
                self._fetch(now)
            slot = self._slots.popleft()
        return max(0.0, slot - now)

    def acquire(self) -> None:
        """Block until one slot is ours."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)

    def _fetch(self, now: float) -> None:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with write_transaction(self.engine) as conn:
            conn.execute(
                dialect.insert(_R)
                .values(key=self.key, next_free=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            query = select(_R.c.next_free).where(_R.c.key == self.key)
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            start = max(conn.scalar(query) or now, now)
            conn.execute(
                update(_R)
                .where(_R.c.key == self.key)
                .values(next_free=start + self.block * self.interval)
            )
        self._slots.extend(start + i * self.interval for i in range(self.block))
